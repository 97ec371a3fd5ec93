"""Cron and fleet runs of the real console script: state, locks, kill -9, SIGTERM, metrics, MQTT."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import pytest
from broker import Broker, Subscriber
from conftest import ROOT
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(scope="module")
def many_photos(tmp_path_factory, images):
    """400 real photo crops (320x240 JPEGs), enough for a run that can be killed half way."""
    folder = tmp_path_factory.mktemp("photos")
    sources = [cv2.imread(str(p)) for p in sorted(images.glob("*.bmp"))]
    for i in range(400):
        image = sources[i % len(sources)]
        h, w = image.shape[:2]
        top, left = (i * 7) % (h - 240), (i * 13) % (w - 320)
        cv2.imwrite(str(folder / f"img_{i:04d}.jpg"), image[top : top + 240, left : left + 320])
    return folder


def start(*args):
    return subprocess.Popen(
        [sys.executable, "-m", "edgenet", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ),
    )


def wait_for_lines(path, count, process, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().count("\n") >= count:
            return
        if process.poll() is not None:
            pytest.fail(f"run ended before {count} records: {process.stderr.read()}")
        time.sleep(0.005)
    pytest.fail(f"no {count} records within {timeout} s")


def read_records(path):
    text = path.read_text()
    assert text.endswith("\n"), "the last line is partial"
    return [json.loads(line) for line in text.splitlines()]


def classify_args(folder, state, output, *extra):
    # v1-0.5-160 with one thread: slow enough per image to be caught in the middle
    return [
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
        *(["--output", str(output)] if output else []),
        *extra,
    ]


def start_piped(folder, state, *extra, stdout=subprocess.PIPE):
    """A cron-style run whose records go to a pipe that the test reads at its own pace: the run can never
    get further ahead of the reader than the pipe, the writer's queue and the frame in flight."""
    args = classify_args(folder, state, None, *extra)
    return subprocess.Popen(
        [sys.executable, "-m", "edgenet", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ),
    )


def test_kill_9_in_the_middle_loses_nothing(many_photos, tmp_path):
    """The records go to --output, a FIFO the test reads: after 120 records the run cannot have gone past
    about 300 (64 KiB of pipe, 64 queued records, the frame in flight), so the kill lands mid-run."""
    state, fifo = tmp_path / "photos.state", tmp_path / "out.fifo"
    os.mkfifo(fifo)
    process = start_piped(many_photos, state, "--output", str(fifo), stdout=subprocess.DEVNULL)
    with open(fifo) as reader:  # the run opens it for writing: both sides meet here
        first = [reader.readline() for _ in range(120)]
        process.kill()
        process.wait(10)
        first += reader.readlines()  # what was in the pipe when the process died
    assert all(line.endswith("\n") for line in first), "a partial record"
    first = [json.loads(line) for line in first]
    assert 120 <= len(first) < 400
    rerun = subprocess.run(
        [sys.executable, "-m", "edgenet", *classify_args(many_photos, state, None)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=300,
    )
    assert rerun.returncode == 0, rerun.stderr
    records = first + [json.loads(line) for line in rerun.stdout.splitlines()]
    sources = [os.path.basename(r["source"]) for r in records]
    assert set(sources) == {f"img_{i:04d}.jpg" for i in range(400)}
    assert len(sources) - len(set(sources)) <= 1  # at most the image in flight is done twice
    again = subprocess.run(
        [sys.executable, "-m", "edgenet", *classify_args(many_photos, state, None)],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout == ""  # nothing new: no records


def test_kill_9_with_annotate_leaves_no_record_without_its_annotated_image(many_photos, tmp_path):
    """--annotate with --state, killed as records land in a regular file: the annotated JPEG is written
    before its record, and the image is marked done after the record, so the re-run completes both."""
    state, output, folder = tmp_path / "a.state", tmp_path / "a.jsonl", tmp_path / "annotated"
    args = classify_args(many_photos, state, output, "--annotate", str(folder))
    process = start(*args)
    try:
        wait_for_lines(output, 60, process)
    finally:
        process.kill()
        process.communicate()
    done = subprocess.run([sys.executable, "-m", "edgenet", *args], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    sources = {os.path.splitext(os.path.basename(r["source"]))[0] for r in read_records(output)}
    assert sources == {f"img_{i:04d}" for i in range(400)}
    annotated = {os.path.splitext(name)[0] for name in os.listdir(folder) if not name.startswith(".")}
    assert annotated == sources


def test_an_annotated_image_that_cannot_be_written_keeps_its_record_and_is_redone(images, tmp_path):
    """The --annotate folder cannot take the image (here a folder is in its way; a full disk alike): the
    record is still written, the run stops with exit 4, and the image is not marked done, so the next run
    does it again instead of leaving it without its annotated image."""
    photos = tmp_path / "in"
    photos.mkdir()
    for name in ("a", "b", "c"):
        (photos / f"{name}.bmp").write_bytes((images / "cat.bmp").read_bytes())
    folder = tmp_path / "ann"
    (folder / "b.jpg").mkdir(parents=True)  # b's annotated image cannot be written
    state, output = tmp_path / "s.state", tmp_path / "o.jsonl"
    args = [*classify_args(photos, state, output, "--annotate", str(folder))]
    first = subprocess.run([sys.executable, "-m", "edgenet", *args], capture_output=True, text=True, cwd=ROOT)
    assert first.returncode == 4 and "cannot write the annotated image" in first.stderr, first.stderr
    assert [os.path.basename(r["source"]) for r in read_records(output)] == ["a.bmp", "b.bmp"]
    (folder / "b.jpg").rmdir()
    second = subprocess.run(
        [sys.executable, "-m", "edgenet", *args], capture_output=True, text=True, cwd=ROOT
    )
    assert second.returncode == 0, second.stderr
    assert [os.path.basename(r["source"]) for r in read_records(output)] == [
        "a.bmp",
        "b.bmp",
        "b.bmp",
        "c.bmp",
    ]
    assert sorted(os.listdir(folder)) == ["a.jpg", "b.jpg", "c.jpg"]


def test_sigterm_flushes_and_the_state_matches(many_photos, tmp_path):
    import sqlite3

    state = tmp_path / "s.state"
    process = start_piped(many_photos, state)
    lines = [process.stdout.readline() for _ in range(50)]
    process.send_signal(signal.SIGTERM)
    # the rest through the same reader: communicate() would skip what readline() already buffered
    rest, stderr = process.stdout.read(), process.stderr.read()
    process.wait(30)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    lines += rest.splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    records = [json.loads(line) for line in lines]
    assert 50 <= len(records) < 400
    with sqlite3.connect(state) as db:
        done = {os.path.basename(row[0]) for row in db.execute("SELECT path FROM seen")}
    assert done == {os.path.basename(r["source"]) for r in records}


def test_a_signal_while_edgenet_is_still_starting_is_quiet():
    """Before the command runs (imports, parsing), SIGINT or SIGTERM ends edgenet with 130 and no
    KeyboardInterrupt traceback in cron and journal logs: edgenet.entry's handlers, sent here for real."""
    for name in ("SIGINT", "SIGTERM"):
        code = (
            "import os, signal, time; from edgenet import entry; entry.install_quiet_exit(); "
            f"os.kill(os.getpid(), signal.{name}); time.sleep(30); print('not stopped')"
        )
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
        )
        assert (done.returncode, done.stdout, done.stderr) == (130, "", ""), name


def test_a_second_run_says_already_running(many_photos, tmp_path):
    state = tmp_path / "s.state"
    first = start_piped(many_photos, state)  # nobody reads its records: it holds the lock, stalled
    assert first.stdout.readline().endswith("\n")
    second = subprocess.run(
        [sys.executable, "-m", "edgenet", *classify_args(many_photos, state, tmp_path / "b.jsonl")],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
    )
    first.kill()
    first.wait(10)
    assert second.returncode == 0
    assert "already running" in second.stderr and f"pid {first.pid}" in second.stderr
    assert not (tmp_path / "b.jsonl").exists() or (tmp_path / "b.jsonl").read_text() == ""


def test_sigterm_ends_a_wait_for_the_lock_with_130(many_photos, tmp_path):
    """--wait queues behind the run holding the state; systemd's stop must end that wait at once, not
    after the other run (hours of backlog)."""
    import fcntl

    state = tmp_path / "s.state"
    with open(f"{state}.lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)  # this test is the other run
        waiter = start(*classify_args(many_photos, state, tmp_path / "w.jsonl", "--wait"))
        line = waiter.stderr.readline()
        assert "waiting for the run that holds" in line, line
        waiter.send_signal(signal.SIGTERM)
        _out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 130 and "Traceback" not in err, err
    assert not (tmp_path / "w.jsonl").exists() or (tmp_path / "w.jsonl").read_text() == ""


def test_changed_file_counts_as_new(images, tmp_path, cli):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((images / "parrot.jpg").read_bytes())
    (folder / "b.bmp").write_bytes((images / "cat.bmp").read_bytes())
    state, output = tmp_path / "s.state", tmp_path / "o.jsonl"
    args = ["classify", str(folder), "-m", "v2", "-f", "jsonl", "--state", str(state), "-o", str(output)]
    assert cli(*args).returncode == 0
    (folder / "a.jpg").write_bytes((images / "hot_dog.jpg").read_bytes())
    run = cli(*args)
    assert run.returncode == 0
    records = read_records(output)
    assert [os.path.basename(r["source"]) for r in records] == ["a.jpg", "b.bmp", "a.jpg"]
    assert records[-1]["top_k"][0]["label"] == "hotdog, hot dog, red hot"


def test_prometheus_textfile_from_a_real_run(images, tmp_path, cli):
    prom = tmp_path / "edgenet.prom"
    (tmp_path / "empty.jpg").write_bytes(b"")
    run = cli(
        "classify",
        str(images),
        str(tmp_path / "empty.jpg"),
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        "-q",
        "--prom-textfile",
        str(prom),
    )
    assert run.returncode == 1
    samples = {s.name: s for f in text_string_to_metric_families(prom.read_text()) for s in f.samples}
    assert samples["edgenet_frames_total"].value == 13 and samples["edgenet_errors_total"].value == 1
    assert samples["edgenet_inference_latency_seconds_count"].value == 12
    assert samples["edgenet_frames_total"].labels["model"] == "v1-0.25-128"


@pytest.fixture
def broker(tmp_path):
    running = Broker(tmp_path)
    yield running
    running.stop()


def test_records_reach_the_broker_and_the_last_will_fires_on_kill(broker, many_photos, tmp_path):
    subscriber = Subscriber(broker, "edgenet/pi7/#")
    output = tmp_path / "out.jsonl"
    process = start(
        "classify",
        str(many_photos),
        "-m",
        "v1-0.5-160",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "-o",
        str(output),
        "--mqtt",
        broker.address,
        "--mqtt-topic",
        "edgenet/pi7",
    )
    wait_for_lines(output, 20, process)
    assert subscriber.wait_for(lambda m: sum(t == "edgenet/pi7/results" for t, _, _ in m) >= 10)
    assert ("edgenet/pi7/status", b"online", False) in subscriber.messages or any(
        t == "edgenet/pi7/status" and p == b"online" for t, p, _ in subscriber.messages
    )
    process.kill()
    process.wait(10)
    assert subscriber.wait_for(lambda m: any(t == "edgenet/pi7/status" and p == b"offline" for t, p, _ in m))
    first = json.loads(next(p for t, p, _ in subscriber.messages if t == "edgenet/pi7/results"))
    assert first["model"] == "v1-0.5-160" and first["frame"] == 0
    subscriber.close()


def test_a_broker_that_is_down_never_stops_the_local_records(images, cli, tmp_path):
    from broker import free_port

    broker = f"127.0.0.1:{free_port()}"
    photo = str(images / "cat.bmp")
    run = cli(
        "classify",
        photo,
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        "--mqtt",
        broker,
        env={"EDGENET_HOME": str(tmp_path)},
    )
    assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
    assert len(run.stdout.splitlines()) == 1 and "Egyptian cat" in run.stdout
    assert "waiting" in run.stderr  # the summary says the message waits in the outbox for the broker


def test_two_streams_on_one_camera_do_not_collide(images, tmp_path):
    """The camera path driven by a video file (VideoCapture opens both): the second run finds it locked."""
    clip = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 30, (320, 240))
    frame = cv2.resize(cv2.imread(str(images / "cat.bmp")), (320, 240))
    for _ in range(300):
        writer.write(frame)
    writer.release()
    output = tmp_path / "cam.jsonl"
    first = start(
        "classify",
        "--camera",
        str(clip),
        "-m",
        "v1-0.5-160",
        "-t",
        "1",
        "-f",
        "jsonl",
        "-q",
        "-o",
        str(output),
    )
    wait_for_lines(output, 3, first)
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgenet",
            "classify",
            "--camera",
            str(clip),
            "-m",
            "v1-0.25-128",
            "-f",
            "jsonl",
            "-q",
        ],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=60,
    )
    first.kill()
    first.wait(10)
    assert second.returncode == 0 and second.stdout == ""
    assert "already running" in second.stderr and str(clip) in second.stderr
