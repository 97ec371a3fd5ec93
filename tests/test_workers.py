"""Folder runs decoded by several workers (EDGENET_DECODE_WORKERS): the same records in the same order, a
stop that ends the run between frames, poison pills told apart, and a bound on the frames read ahead."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from conftest import ROOT

from edgenet.run.prefetch import Prefetcher, Prepared
from edgenet.run.workers import ImageReads, decode_workers

VARYING = ("latency_ms", "time")
COUNT = 500


def run_with_workers(workers, *args, timeout=180):
    env = dict(os.environ, EDGENET_DECODE_WORKERS=str(workers))
    return subprocess.run(
        [sys.executable, "-m", "edgenet", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=str(ROOT),
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory, images):
    """The shared photos twice, with truncated and damaged JPEGs, text and empty files and a broken link
    between them: errors in several places, next to images that take long and short to
    decode, and decoder warnings on stderr that must be told apart when several decodes run at once."""
    folder = tmp_path_factory.mktemp("mixed")
    photos = sorted(p for p in images.iterdir() if p.suffix in (".jpg", ".bmp"))
    for number, photo in enumerate(photos * 2):
        shutil.copyfile(photo, folder / f"{number:02d}_{photo.name}")
        data = photo.read_bytes()
        if number % 5 == 1:
            (folder / f"{number:02d}a_cut.jpg").write_bytes(data[: len(data) // 3])
        if number % 4 == 2 and photo.suffix == ".jpg":  # libjpeg says so on stderr: "Corrupt JPEG data"
            middle = len(data) // 2
            (folder / f"{number:02d}d_damaged.jpg").write_bytes(
                data[:middle] + bytes(range(7, 57)) + data[middle:]
            )
            padded = data[:-2] + b"\x00\x00" + data[-2:]  # a warning libjpeg prints, not an error
            (folder / f"{number:02d}e_padded.jpg").write_bytes(padded)
        if number % 7 == 3:
            (folder / f"{number:02d}b_notes.png").write_text("not an image\n")
            (folder / f"{number:02d}c_empty.jpg").write_bytes(b"")
    (folder / "30_gone.jpg").symlink_to(folder / "not-there.jpg")
    return folder


def without_timings(stdout):
    return [{k: v for k, v in json.loads(line).items() if k not in VARYING} for line in stdout.splitlines()]


def test_several_workers_give_the_same_records_in_the_same_order(mixed_folder):
    args = ("classify", str(mixed_folder), "-m", "v2", "-t", "1", "-f", "jsonl", "-q")
    one = run_with_workers(1, *args)
    assert one.returncode == 1, one.stderr  # some inputs failed: their error records are there
    expected = without_timings(one.stdout)
    errors = [r for r in expected if "error" in r]
    assert len(expected) > 30 and len(errors) >= 8
    assert [r["frame"] for r in expected] == list(range(len(expected)))
    for words in ("truncated", "empty", "Corrupt JPEG data", "not an image", "broken symbolic link"):
        assert any(words in r["error"] for r in errors), words
    assert all("error" not in r for r in expected if r["source"].endswith("padded.jpg"))
    for workers in (2, 3):
        run = run_with_workers(workers, *args)
        assert (run.returncode, run.stderr) == (1, one.stderr)
        assert without_timings(run.stdout) == expected, workers


def test_a_bad_workers_variable_is_a_usage_error(images):
    run = run_with_workers("two", "classify", str(images), "-m", "v2", "-f", "jsonl")
    assert run.returncode == 2 and run.stdout == ""
    assert "EDGENET_DECODE_WORKERS=two: give a whole number" in run.stderr and "Traceback" not in run.stderr


def test_sigterm_with_two_workers_writes_whole_records_and_exits_130(tmp_path, images):
    """The records go to a pipe the test reads 30 of: the run cannot get more than the pipe, the writer's
    queue and the frames read ahead past them, so the signal lands mid-run."""
    folder = tmp_path / "photos"
    folder.mkdir()
    sources = [cv2.imread(str(p))[:240, :320] for p in sorted(images.glob("*.bmp"))]
    for number in range(COUNT):
        cv2.imwrite(str(folder / f"img_{number:04d}.jpg"), sources[number % len(sources)])
    state = tmp_path / "s.state"
    args = [
        "classify",
        str(folder),
        "-m",
        "v1-0.5-160",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "--state",
        str(state),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "edgenet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ, EDGENET_DECODE_WORKERS="2"),
    )
    lines = [process.stdout.readline() for _ in range(30)]  # the pipe holds the run back: it is mid-way
    process.send_signal(signal.SIGTERM)
    rest, stderr = process.stdout.read(), process.stderr.read()
    process.wait(30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    lines += rest.splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    records = [json.loads(line) for line in lines]
    assert 30 <= len(records) < COUNT
    names = [os.path.basename(r["source"]) for r in records]
    assert names == [f"img_{number:04d}.jpg" for number in range(len(records))]  # in order, no gap
    with sqlite3.connect(state) as db:
        done = {os.path.basename(row[0]) for row in db.execute("SELECT path FROM seen")}
        left = db.execute("SELECT COUNT(*) FROM images WHERE started_at IS NOT NULL").fetchone()[0]
    assert done == set(names) and left == 0  # read ahead, not recorded: not left in progress


# -- poison pills with several images being decoded at once ------------------------------------------


def _decoding(state_path, since=0.0):
    """The images marked as being decoded (by a run begun after `since`, time.time())."""
    try:
        with sqlite3.connect(f"file:{state_path}?mode=ro", uri=True, timeout=10) as db:
            rows = db.execute(
                "SELECT CAST(path AS TEXT) FROM images WHERE decoding AND started_at >= ?", (since,)
            ).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return set()
    return {os.path.basename(row[0]) for row in rows}


def _killed_when_decoding(args, state_path, wanted):
    """A run with 2 workers, SIGKILLed (as the OOM killer does) once `wanted(the images being decoded)`;
    returns those images."""
    started = time.time()
    process = subprocess.Popen(
        [sys.executable, "-m", "edgenet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ, EDGENET_DECODE_WORKERS="2"),
    )
    deadline = time.monotonic() + 90
    decoding = set()
    try:
        while time.monotonic() < deadline and process.poll() is None:
            decoding = _decoding(state_path, started)
            if wanted(decoding):
                break
            time.sleep(0.005)
    finally:
        process.kill()
        out, err = process.communicate()
    assert process.returncode == -9, err  # killed, not finished
    return decoding


def test_a_poison_pill_is_found_with_two_workers_and_its_neighbours_are_not_blamed(tmp_path):
    from test_imaging import png_bomb

    from edgenet.state import POISONED_ERROR

    folder = tmp_path / "inbox"
    folder.mkdir()
    ok, encoded = cv2.imencode(".jpg", np.full((48, 64, 3), 90, np.uint8))
    (folder / "a.jpg").write_bytes(encoded.tobytes())
    (folder / "b.png").write_bytes(png_bomb(30000, 30000))  # seconds and GBs to decode: the killer
    (folder / "c.png").write_bytes(png_bomb(12000, 12000))  # slow too, but harmless
    state = tmp_path / "s.state"
    args = ["classify", str(folder), "-m", "v2", "-t", "1", "-f", "jsonl", "-q", "--max-pixels", "0"]
    args += ["--state", str(state)]
    # the first death: b and a neighbour (a waiting for its turn, or c) were both being decoded
    first = _killed_when_decoding(args, state, lambda decoding: "b.png" in decoding and len(decoding) >= 2)
    assert len(first) >= 2
    # the second run decodes the images the first left in progress one at a time: only b is being
    # decoded when it dies, so only b gets a second strike
    _killed_when_decoding(args, state, lambda decoding: "b.png" in decoding)
    assert _decoding(state) == {"b.png"}
    third = run_with_workers(2, *args)
    assert third.returncode == 1, third.stderr
    rows = {os.path.basename(r["source"]): r for r in map(json.loads, third.stdout.splitlines())}
    assert rows["b.png"]["error"] == POISONED_ERROR
    for neighbour in first - {"b.png"}:  # a result, not skipped as a poison pill
        assert "error" not in rows[neighbour] and rows[neighbour]["top_k"], neighbour


# -- the prefetcher itself: order, memory bound, a hung read, a failing hook ----------------------------


@pytest.fixture(scope="module")
def many(tmp_path_factory, images):
    folder = tmp_path_factory.mktemp("many")
    photos = sorted(p for p in images.iterdir() if p.suffix in (".jpg", ".bmp"))
    paths = []
    for number in range(24):
        photo = photos[number % len(photos)]
        paths.append(str(folder / f"{number:02d}{photo.suffix}"))
        shutil.copyfile(photo, paths[-1])
    return paths


def prepare_small(frame):
    """A real preparation, cheap: the frame down to 32x32 (an error frame stays an error)."""
    if frame.error is not None:
        return Prepared(frame, None, None, 0.0, frame.error)
    return Prepared(frame, cv2.resize(frame.image, (32, 32), interpolation=cv2.INTER_AREA), None, 0.0, None)


def wait_until(condition, what, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.01)


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_frames_read_ahead_never_exceed_the_depth_plus_one_per_worker(many, workers):
    depth = 4
    prefetch = Prefetcher(ImageReads(many, workers=workers), prepare_small, live=False, depth=depth)
    handoff = prefetch.handoff
    taken = []
    for item in prefetch.items():
        if not taken:  # hold the main thread on the first frame until the workers are all waiting
            wait_until(lambda: handoff.held == depth + workers, "the workers fill the buffer")
        taken.append(item.frame.source)
    assert taken == many
    assert handoff.most_held == depth + workers and handoff.held == 0


def test_a_read_that_hangs_in_one_worker_does_not_keep_a_stop_waiting(many):
    hanging, release = threading.Event(), threading.Event()

    def before_read(path):
        if path == many[3]:
            hanging.set()
            release.wait(120)  # a stale network mount

    taken = []
    prefetch = Prefetcher(ImageReads(many, workers=2, before_read=before_read), prepare_small, live=False)

    def consume():
        for item in prefetch.items(lambda: hanging.is_set() and len(taken) >= 3):
            taken.append(item.frame.source)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(60)
    try:
        assert not consumer.is_alive(), "the stop waited for the hung read"
        assert taken == many[:3]  # the other worker went on, but nothing overtook the hung image
    finally:
        release.set()


@pytest.mark.parametrize("workers", [1, 3])
def test_a_failing_hook_ends_the_frames_after_the_ones_before_it(many, workers):
    def before_read(path):
        if path == many[5]:
            raise OSError("the state cannot be written")

    prefetch = Prefetcher(
        ImageReads(many, workers=workers, before_read=before_read), prepare_small, live=False
    )
    taken = []
    with pytest.raises(OSError, match="cannot be written"):
        for item in prefetch.items():
            taken.append(item.frame.source)
    assert taken == many[:5]


@pytest.mark.parametrize(
    "cores, threads, accelerated, workers",
    [
        (1, 1, False, 1),
        (2, 1, False, 1),
        (4, 3, False, 1),
        (4, 2, False, 2),
        (8, 4, False, 4),
        (4, 1, True, 3),
    ],
)
def test_workers_are_the_cores_inference_leaves(cores, threads, accelerated, workers):
    assert decode_workers(cores, threads, accelerated=accelerated) == workers


def test_a_folder_run_splits_4_cores_or_more_between_inference_and_decoding():
    from edgenet.runtime import threads_for

    split = {}
    for cores in range(1, 17):
        threads = threads_for(cores, pipeline=True, folder=True)
        split[cores] = (threads, decode_workers(cores, threads))
        assert (
            threads == threads_for(cores, pipeline=True) or cores >= 4
        )  # streams and small boards: as before
    assert split[1] == split[2] == (1, 1) and split[3] == (2, 1)  # 2 cores exactly as before
    assert split[4] == (2, 2) and split[6] == (3, 3) and split[8] == split[16] == (4, 4)
    assert all(sum(split[cores]) <= max(cores, 2) for cores in split)  # never more threads than cores
