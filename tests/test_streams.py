"""Video files and cameras: real MJPG clips made from the shared photos, the real model, the real CLI.

There is no camera here: the camera code path (CameraFrames, the newest-frame handoff, reconnects) is driven
by cv2.VideoCapture on a video file, which is what it takes for /dev/videoN too, and a lost camera is a
capture that stops delivering after N frames.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import pytest
from conftest import run_loop

from edgenet import cameras, host, sources
from edgenet.errors import DeviceError, UsageError

FRAMES = 12
SIZE = (320, 240)
LATENCY_KEYS = ["capture", "decode", "preprocess", "inference", "postprocess", "total"]


def write_clip(path: Path, photos: list[Path], frames: int, size=SIZE) -> Path:
    import cv2

    images = [cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA) for p in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, size)
    assert writer.isOpened(), "this OpenCV cannot write MJPG .avi"
    for index in range(frames):
        writer.write(images[index % len(images)])
    writer.release()
    return path


@pytest.fixture(scope="module")
def photos(images) -> list[Path]:
    return [images / name for name in ("owl.jpg", "hot_dog.jpg", "parrot.jpg", "cat_720p.jpg")]


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photos) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.avi", photos, FRAMES)


@pytest.fixture(scope="module")
def model(mirror, session_home):
    """One real model for the loop tests (module-scoped, so it sets the test environment itself)."""
    from edgenet import zoo
    from edgenet.model import open_model

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGENET_MODEL_MIRROR", str(mirror))
        patch.setenv("EDGENET_HOME", str(session_home))
        zoo._mirror_index.cache_clear()
        return open_model("v1-0.25-128", threads=1, delegate="xnnpack")


class SlowTask:
    """The model's real task, with `before()` run before every inference (a slow model: it waits for
    something), and a stop requested when the `stop_after`th inference is done."""

    def __init__(self, task, before=None, stop=None, stop_after=None):
        self.task, self.before, self.stop, self.stop_after, self.inferred = task, before, stop, stop_after, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def infer(self, tensor, context):
        if self.before is not None:
            self.before()
        found = self.task.infer(tensor, context)
        self.inferred += 1
        if self.stop is not None and self.inferred == self.stop_after:
            self.stop.request("test")
        return found


def with_task(model, task):
    from dataclasses import replace

    return replace(model, task=task)


class FlakyCapture:
    """A real VideoCapture on a clip that stops delivering after `fail_after` frames (a camera unplugged)."""

    opened = 0

    def __init__(self, path: Path, fail_after: int, pace: float = 0.0):
        import cv2

        self.capture = cv2.VideoCapture(str(path))
        self.left = fail_after
        self.grabbed = 0
        self.pace = pace  # seconds per frame, like a camera's frame interval
        FlakyCapture.opened += 1

    def grab(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        if self.pace:
            time.sleep(self.pace)
        found = self.capture.grab()
        self.grabbed += 1
        return found

    def retrieve(self):
        return self.capture.retrieve()

    def release(self) -> None:
        self.capture.release()


# -- sources -------------------------------------------------------------------------------------------


def test_video_frames_gives_every_frame_in_order(clip):
    frames = list(sources.video_frames(str(clip)))
    assert [f.index for f in frames] == list(range(FRAMES))
    for frame in frames:
        assert frame.error is None and frame.source == str(clip)
        assert frame.image.shape == (SIZE[1], SIZE[0], 3)
        # FFmpeg reads and decodes in grab(): for a file that is all decoding, and no capture wait
        assert frame.captured is not None and frame.capture_ms == 0.0 and frame.decode_ms > 0


def test_video_frames_with_one_decoder_thread_gives_the_same_pixels(clip):
    import numpy as np

    default = list(sources.video_frames(str(clip)))
    capped = list(sources.video_frames(str(clip), decode_threads=1))
    assert len(capped) == len(default) == FRAMES
    assert all(np.array_equal(a.image, b.image) for a, b in zip(default, capped, strict=True))


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="FFmpeg starts one decoder thread per core")
def test_decoder_thread_cap_holds_on_an_mpeg4_clip(tmp_path, photos):
    """Uncapped, FFmpeg decodes MPEG-4 with a thread per core; capped at 1 it starts none, same pixels."""
    import cv2
    import numpy as np

    path = tmp_path / "clip.mp4"
    images = [cv2.resize(cv2.imread(str(p)), SIZE) for p in photos]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, SIZE)
    if not writer.isOpened():
        pytest.skip("this OpenCV cannot write MPEG-4")
    for index in range(8):
        writer.write(images[index % len(images)])
    writer.release()

    def first_frames(decode_threads):
        frames = sources.video_frames(str(path), decode_threads=decode_threads)
        taken = [next(frames) for _ in range(3)]
        threads = len(os.listdir("/proc/self/task"))  # while the capture is open
        frames.close()
        return taken, threads

    default, default_threads = first_frames(None)
    capped, capped_threads = first_frames(1)
    assert capped_threads < default_threads
    assert all(np.array_equal(a.image, b.image) for a, b in zip(default, capped, strict=True))


def test_decoder_gets_the_cores_inference_leaves_and_never_none():
    from edgenet.runtime import decode_threads, usable_cores

    assert decode_threads(1) == decode_threads(None) == max(1, usable_cores() - 1)
    assert decode_threads(usable_cores()) == 1 and decode_threads(10_000) == 1


def test_video_frames_every_nth_keeps_file_positions(clip):
    assert [f.index for f in sources.video_frames(str(clip), every=5)] == [0, 5, 10]


def test_unreadable_videos_are_one_error_frame_each(tmp_path):
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"RIFF this is not a video" * 10)
    for path, words in ((tmp_path / "missing.avi", "no such file"), (junk, "cannot open video")):
        frames = list(sources.video_frames(str(path)))
        assert len(frames) == 1 and frames[0].image is None and words in frames[0].error


def test_videos_are_recognised_by_extension():
    assert sources.is_video("walk.MP4") and sources.is_video("/x/clip.avi") and sources.is_video("*.mkv")
    assert not sources.is_video("cat.jpg") and not sources.is_video("video")


@pytest.mark.parametrize(
    "text, kind, device, name",
    [
        ("0", "opencv", 0, "camera:0"),
        ("2", "opencv", 2, "camera:2"),
        ("/dev/video1", "opencv", "/dev/video1", "camera:/dev/video1"),
        ("picamera2", "picamera2", 0, "camera:picamera2:0"),
        ("picamera2:1", "picamera2", 1, "camera:picamera2:1"),
        ("rtsp://cam.local/stream", "opencv", "rtsp://cam.local/stream", "camera:rtsp://cam.local/stream"),
    ],
)
def test_parse_camera(text, kind, device, name):
    assert cameras.parse_camera(text) == cameras.CameraSpec(kind, device, name)


@pytest.mark.parametrize("text", ["", "picamera2:front"])
def test_parse_camera_rejects_nonsense(text):
    with pytest.raises(UsageError):
        cameras.parse_camera(text)


def test_camera_diagnostics_say_what_was_found(tmp_path):
    empty = cameras.camera_diagnostics(str(tmp_path))
    assert f"no {tmp_path}/video* devices" in empty and "picamera2" in empty and "--video FILE" in empty
    (tmp_path / "video0").write_bytes(b"")
    (tmp_path / "video1").write_bytes(b"")
    found = cameras.camera_diagnostics(str(tmp_path))
    assert f"found {tmp_path}/video0, {tmp_path}/video1" in found


def test_missing_camera_node_is_a_device_error():
    with pytest.raises(DeviceError) as caught:
        cameras.open_camera(cameras.parse_camera("/dev/video-edgenet-missing"))
    assert caught.value.exit_code == 4 and "does not exist" in str(caught.value)


def test_picamera2_missing_is_a_device_error_with_advice():
    if host.picamera2_status() == "importable":
        pytest.skip("picamera2 is importable here: the missing-picamera2 message cannot be produced")
    with pytest.raises(DeviceError) as caught:
        cameras.open_camera(cameras.parse_camera("picamera2"))
    assert "picamera2 is" in str(caught.value) and "Try:" in str(caught.value)


def test_lost_camera_is_an_error_frame_then_reopened(clip):
    FlakyCapture.opened = 0
    camera = cameras.CameraFrames(lambda: FlakyCapture(clip, 4), "camera:test", reconnect=2, backoff=0.001)
    frames = list(islice(camera, 11))
    assert [f.index for f in frames] == list(range(11))  # numbering goes on across reconnects
    lost = [f.index for f in frames if f.error is not None]
    assert lost == [4, 9]
    assert all("camera lost" in frames[i].error and frames[i].image is None for i in lost)
    assert all(f.image is not None for f in frames if f.error is None)
    assert FlakyCapture.opened == 3 and camera.losses == 2


def test_camera_that_stays_lost_raises_after_the_reconnect_attempts(clip):
    opened = []

    def opener():
        opened.append(1)
        if len(opened) > 1:
            raise DeviceError("cannot open camera:test: unplugged")
        return FlakyCapture(clip, 2)

    camera = cameras.CameraFrames(opener, "camera:test", reconnect=3, backoff=0.001)
    seen = []
    with pytest.raises(DeviceError, match="did not come back after 3"):
        for frame in camera:
            seen.append(frame)
    assert [f.error is None for f in seen] == [True, True, False]
    assert len(opened) == 1 + 3


def test_camera_that_gives_no_first_frame_is_a_device_error(clip):
    camera = cameras.CameraFrames(lambda: FlakyCapture(clip, 0), "camera:test", reconnect=3, backoff=0.001)
    with pytest.raises(DeviceError, match="gave no frame"):
        list(camera)


# -- pipeline --------------------------------------------------------------------------------------------


def test_file_stream_classifies_every_frame_in_order(clip, model):
    results, outcome = run_loop(model, sources.video_frames(str(clip)))
    assert outcome.failure is None and not outcome.stopped
    assert [r["frame"] for r in results] == list(range(FRAMES))
    assert all(list(r["latency_ms"]) == LATENCY_KEYS and r["dropped"] == 0 and r["captured"] for r in results)
    # the clip cycles through 4 different photos: the predictions follow them
    assert len({r["top_k"][0]["index"] for r in results}) >= 3
    assert [r["top_k"][0]["index"] for r in results[:4]] == [r["top_k"][0]["index"] for r in results[4:8]]


def test_live_stream_takes_the_newest_frame_and_counts_the_drops(tmp_path, photos, model):
    frames = 30
    long_clip = write_clip(tmp_path / "long.avi", photos, frames)
    opened: list[FlakyCapture] = []

    def opener():
        opened.append(FlakyCapture(long_clip, frames))
        return opened[-1]

    def three_more_frames() -> None:
        """Each inference lasts while the camera hands over 3 more frames (or ends): 2 of them go stale.
        A frame is handed over before the next is grabbed, hence 4 grabs."""
        capture = opened[-1]
        target = capture.grabbed + 4
        for _ in range(10_000):
            if capture.grabbed >= target or capture.left <= 0:
                return
            time.sleep(0.001)

    camera = cameras.CameraFrames(opener, "camera:test", reconnect=0)
    slow = with_task(model, SlowTask(model.task, before=three_more_frames))
    records, outcome = run_loop(slow, camera, live=True)
    assert isinstance(outcome.failure, DeviceError)  # the clip ends: lost for good after --reconnect 0
    good = [r for r in records if "error" not in r]
    assert "camera lost" in records[-1]["error"] and records[-1]["frame"] == frames
    # the last two may be short of 2: the clip ran out while they waited
    assert all(r["dropped"] >= 2 for r in good[1:-2]) and len(good) >= 4
    assert len(good) + sum(r["dropped"] for r in good) == frames  # every frame delivered or counted
    previous = -1
    for record in good:
        assert record["dropped"] == record["frame"] - previous - 1  # the gap is exactly the drops
        previous = record["frame"]


def test_stream_stops_after_the_frame_in_flight(clip, model):
    from edgenet.run.stop import StopSignals

    stop = StopSignals()
    records, outcome = run_loop(
        with_task(model, SlowTask(model.task, stop=stop, stop_after=3)),
        sources.video_frames(str(clip)),
        stop=stop,
    )
    assert [r["frame"] for r in records] == [0, 1, 2] and outcome.stopped == ["test"]


def test_max_frames_stops_the_loop(clip, model):
    from edgenet.run.loop import Limits

    records, outcome = run_loop(model, sources.video_frames(str(clip)), limits=Limits(max_frames=5))
    assert [r["frame"] for r in records] == [0, 1, 2, 3, 4] and not outcome.stopped


def test_live_view_and_summary_render(clip, model):
    from rich.console import Console

    from edgenet.run.loop import Limits
    from edgenet.sinks.live import LiveView

    records, outcome = run_loop(model, sources.video_frames(str(clip)), limits=Limits(warm_up=True))
    summary = outcome.summary
    summary.add({"source": "camera:0", "frame": 99, "error": "camera lost: camera:0 gave no frame"})
    view = LiveView("edgenet: test")
    view.summary = summary
    console = Console(record=True, width=120, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(view)
    text = console.export_text()
    for words in ("fps", "p50/p90/p99", "dropped", "camera lost"):
        assert words in text
    line = summary.line(model.describe(), noun="frame", title="clip.avi")
    assert line.startswith(f"clip.avi, {FRAMES + 1} frames, 1 error, 0 dropped") and "fps" in line
    # the stream warmed the interpreter first: at least 3 invokes, reported in the summary
    assert len(summary.warmup_ms) >= 3 and f"warm-up {len(summary.warmup_ms)} invokes" in line
    alone = 1000 / statistics.median(summary.warmup_ms[1:])
    assert f" of the {alone:.0f} fps invoke alone allows)" in line


def test_live_view_shows_the_current_result(clip, model):
    from rich.console import Console

    from edgenet.sinks.live import LiveView

    records, outcome = run_loop(model, sources.video_frames(str(clip)))
    view = LiveView("edgenet: test")
    view.summary = outcome.summary
    console = Console(record=True, width=120, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(view)
    assert records[-1]["top_k"][0]["label"] in console.export_text()


def test_summary_fps_comes_from_when_inference_ended():
    """11 records whose inferences ended 10 ms apart, handed over all at once (a writer catching up):
    100 fps, i.e. 1.00 of the 100 fps that a 10 ms warm-up p50 allows; below 10 frames no share."""
    from edgenet.run.summary import RunSummary

    record = {"source": "clip.avi", "frame": 0, "top_k": [], "latency_ms": {"inference": 10.0, "total": 11.0}}
    few, many = RunSummary(), RunSummary()
    for summary in (few, many):
        summary.warmup_ms = [50.0, 10.0, 10.0, 10.0]
    for index in range(11):
        many.add(record, 1000.0 + index * 0.01)
        if index < 5:
            few.add(record, 1000.0 + index * 0.01)
    assert round(many.steady_fps()) == 100
    assert "100.0 fps (1.00 of the 100 fps invoke alone allows)" in many.line("m", title="clip.avi")
    assert "100.0 fps, warm-up 4 invokes (first 50.0 ms, then p50 10.00 ms)" in few.line("m", title="x")


def test_image_runs_do_not_warm_up(images, model):
    records, outcome = run_loop(model, sources.image_frames([str(images / "owl.jpg")]))
    assert len(records) == 1 and "error" not in records[0] and outcome.summary.warmup_ms == []


def test_record_time_is_when_inference_ended_not_when_the_writer_got_to_it(clip, model):
    """Postprocessing and writing run in a writer thread; a sink that lags must not shift the records'
    `time` (which is what fps is computed from). Here the first record is held until every frame has been
    inferred: every record's time comes before the first write."""
    import threading
    from datetime import datetime

    from edgenet.sinks import Sink

    all_inferred = threading.Event()
    counting = SlowTask(model.task)

    def last_frame() -> None:
        if counting.inferred == FRAMES - 1:
            all_inferred.set()

    counting.before = last_frame

    class Held(Sink):
        def __init__(self):
            self.first_write = None

        def write(self, result):
            if self.first_write is None:
                assert all_inferred.wait(30), "the main thread did not get to the last frame"
                time.sleep(0.01)  # the last inference ends after `before`
                self.first_write = time.time()

    held = Held()
    written, _ = run_loop(with_task(model, counting), sources.video_frames(str(clip)), sinks=[held])
    stamps = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")).timestamp() for r in written]
    assert [r["frame"] for r in written] == list(range(FRAMES))
    assert stamps == sorted(stamps)
    assert stamps[:-1] == sorted(stamps[:-1]) and all(stamp <= held.first_write for stamp in stamps[:-1])


# -- command line ---------------------------------------------------------------------------------------


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_cli_video_gives_one_record_per_frame(cli, clip):
    done = cli("classify", "--video", str(clip), "--model", "v2", "--format", "jsonl")
    assert done.returncode == 0, done.stderr
    found = records(done.stdout)
    assert [r["frame"] for r in found] == list(range(FRAMES))
    assert {r["source"] for r in found} == {str(clip)} and {r["model"] for r in found} == {"v2"}
    assert all(list(r["latency_ms"]) == LATENCY_KEYS and "captured" in r for r in found)
    assert f"{FRAMES} frames" in done.stderr and "Traceback" not in done.stderr


def test_cli_max_frames_and_videos_as_plain_inputs(cli, clip, photos):
    done = cli(
        "classify",
        str(photos[0]),
        str(clip),
        "--max-frames",
        "5",
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
        "--quiet",
    )
    assert done.returncode == 0, done.stderr
    found = records(done.stdout)
    expected = [(str(photos[0]), 0)] + [(str(clip), i) for i in range(4)]
    assert [(r["source"], r["frame"]) for r in found] == expected
    assert "captured" not in found[0] and "capture" not in found[0]["latency_ms"]  # images keep their schema
    assert " frames, " not in done.stderr  # --quiet: no summary


def test_cli_duration_counts_from_the_first_frame(cli, clip):
    """The interpreter warms for 0.2 s before capture, and a loaded machine may be slow to deliver the first
    frame: --duration counts from that frame, so a duration shorter than both still streams."""
    done = cli(
        "classify", "--video", str(clip), "--duration", "0.1", "--model", "v1-0.25-128", "--format", "jsonl"
    )
    assert done.returncode == 0, done.stderr
    found = records(done.stdout)
    assert found and [r["frame"] for r in found] == list(range(len(found)))
    assert "warm-up " in done.stderr


def test_cli_camera_path_with_a_file_as_the_device(cli, clip):
    done = cli(
        "classify", "--camera", str(clip), "--max-frames", "4", "--model", "v1-0.25-128", "--format", "jsonl"
    )
    found = records(done.stdout)
    # read as a camera, the clip runs ahead of the model: stale frames are dropped, and its end is a "lost
    # camera" (an error record, exit 1) if the 4 records were not all taken before that
    lost = [r for r in found if "error" in r]
    assert done.returncode == (1 if lost else 0), done.stderr
    assert all("camera lost" in r["error"] for r in lost)
    assert len(found) == 4 and {r["source"] for r in found} == {f"camera:{clip}"}
    frames = [r["frame"] for r in found]
    assert frames == sorted(set(frames)) and all(r["dropped"] >= 0 for r in found if "error" not in r)


def test_cli_network_camera_that_never_answers_gives_up_with_exit_4(cli):
    """A server that accepts the connection and then says nothing: FFmpeg alone would wait 30 s or more."""
    import socket
    import threading

    from edgenet.cameras import NETWORK_OPEN_TIMEOUT_MS

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held: list = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(server.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    url = f"rtsp://127.0.0.1:{server.getsockname()[1]}/stream"
    try:
        done = cli("classify", "--camera", url, "--model", "v1-0.25-128", "-f", "jsonl")
    finally:
        server.close()
        for conn in held:
            conn.close()
    assert done.returncode == 4 and done.stdout == "" and "Traceback" not in done.stderr
    assert f"cannot open camera:{url}: no video stream came from that address" in done.stderr
    assert "ffprobe" in done.stderr and "picamera2" not in done.stderr
    assert f"waited up to {NETWORK_OPEN_TIMEOUT_MS / 1000:g} s" in done.stderr


def test_cli_camera_0_without_a_camera_exits_4(cli):
    if Path("/dev/video0").exists():
        pytest.skip("/dev/video0 exists on this machine: --camera 0 would open a real camera")
    done = cli("classify", "--camera", "0", "--model", "v1-0.25-128", "--format", "jsonl")
    assert done.returncode == 4
    assert done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.startswith("edgenet: error: cannot open camera:0: /dev/video0 does not exist")
    assert "picamera2" in done.stderr and "Try:" in done.stderr and len(done.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--max-frames", "3"],  # stream options without a stream
        ["--width", "640", "--video", "{clip}"],  # capture size without a camera
        ["--camera", "0", "--video", "{clip}"],  # a camera and files at once
        ["--camera", "picamera2:front"],
        ["--duration", "0", "--video", "{clip}"],
        ["--video", "{photos}"],  # a folder without videos
    ],
)
def test_cli_stream_usage_errors_exit_2(cli, clip, photos, args):
    args = [a.replace("{clip}", str(clip)).replace("{photos}", str(photos[0].parent)) for a in args]
    done = cli(
        "classify",
        str(photos[0]) if "--video" not in args and "--camera" not in args else "--quiet",
        *args,
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("edgenet: error: ") and done.stdout == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_signal_stops_cleanly_with_130(clip, signum):
    # --camera with a file never ends on its own: at the end of the clip the "camera" is lost and reopened
    command = [
        sys.executable,
        "-m",
        "edgenet",
        "classify",
        "--camera",
        str(clip),
        "--reconnect",
        "1000",
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = [process.stdout.readline() for _ in range(3)]
        assert all(line.endswith("\n") for line in first), process.stderr.read() if process.poll() else first
        process.send_signal(signum)
        rest, errors = process.stdout.read(), process.stderr.read()  # readline()s reader: no gap
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, errors
    lines = first + rest.splitlines(keepends=True)
    assert all(line.endswith("\n") for line in lines)
    assert all(json.loads(line)["source"] == f"camera:{clip}" for line in lines)
    assert "interrupted" in errors and "Traceback" not in errors


def test_record_writer_keeps_order_and_hands_failures_back():
    from edgenet.run.writer import RecordWriter

    written = []
    writer = RecordWriter(written.append, depth=2)
    for number in range(50):
        writer.put(number)
    writer.close()
    assert written == list(range(50))

    def broken(_result):
        raise BrokenPipeError("reader went away")

    writer = RecordWriter(broken)
    writer.put(1)
    with pytest.raises(BrokenPipeError):
        for number in range(1000):  # the failure surfaces at a later put, or at close
            writer.put(number)
        writer.close()


def test_record_writer_on_a_stop_keeps_the_frame_in_flight_for_a_slow_reader_and_gives_up_on_a_dead_one():
    import threading

    from edgenet.run.writer import RecordWriter

    def filled(gate: threading.Event, written: list) -> RecordWriter:
        """Result 0 is being written (held at `gate`), 1 and 2 fill the queue; a stop comes during 3."""
        taken = threading.Event()

        def deliver(result) -> None:
            taken.set()
            if gate.wait():
                written.append(result)

        writer = RecordWriter(deliver, depth=2)
        assert writer.put(0)
        assert taken.wait(10)  # the writer thread took 0 and waits at the gate
        assert writer.put(1) and writer.put(2)
        assert writer.put(3, give_up=lambda: True) is False  # full, and asked to stop: kept for close
        return writer

    gate, written = threading.Event(), []
    writer = filled(gate, written)
    gate.set()  # the reader is slow, not dead
    writer.close(give_up=lambda: True, grace=5.0)
    assert written == [0, 1, 2, 3] and writer.unwritten == 0 and not writer.stuck

    gate, written = threading.Event(), []
    writer = filled(gate, written)  # the reader never reads again
    writer.close(give_up=lambda: True, grace=0.2)
    assert writer.stuck and writer.unwritten == 4 and written == []
    gate.set()


def test_cli_stream_into_a_closed_pipe_ends_quietly(tmp_path, photos):
    long_clip = write_clip(tmp_path / "long.avi", photos, 300)
    command = [
        sys.executable,
        "-m",
        "edgenet",
        "classify",
        "--video",
        str(long_clip),
        "--model",
        "v1-0.25-128",
        "--format",
        "jsonl",
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()  # like `| head -1`
    errors = process.stderr.read()
    process.wait(timeout=30)
    assert json.loads(first)["frame"] == 0
    assert process.returncode == 0 and "Traceback" not in errors and "Exception" not in errors


def test_cli_stream_stops_on_sigterm_when_nobody_reads_its_output(tmp_path, photos):
    """stdout is a pipe that nobody reads: the writer thread blocks in write() for good. SIGTERM must still
    end the run, after the grace period, with 130 and a line saying how many records were not written."""
    import fcntl
    import termios

    from edgenet.run.loop import STALLED_OUTPUT_GRACE_S

    long_clip = write_clip(tmp_path / "long.avi", photos, 600)
    command = [sys.executable, "-m", "edgenet", "classify", "--video", str(long_clip)]
    command += ["--model", "v1-0.25-128", "--format", "jsonl"]
    read_end, write_end = os.pipe()
    process = subprocess.Popen(command, stdout=write_end, stderr=subprocess.PIPE, text=True)
    os.close(write_end)
    try:
        waiting, last, still = bytearray(4), -1, 0
        for _ in range(600):  # until the pipe stops filling up: the run is stalled on its reader
            fcntl.ioctl(read_end, termios.FIONREAD, waiting)
            now = int.from_bytes(waiting, sys.byteorder)
            still = still + 1 if now == last and now > 0 else 0
            if still >= 10 or process.poll() is not None:
                break
            last = now
            time.sleep(0.1)
        assert process.poll() is None, "the stream ended before its output filled the pipe"
        process.send_signal(signal.SIGTERM)
        errors = process.stderr.read()
        process.wait(timeout=STALLED_OUTPUT_GRACE_S + 25)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(read_end)
    assert process.returncode == 130 and "Traceback" not in errors
    assert "records were not written because the output was not being read" in errors


def test_cli_stream_csv_carries_the_stream_fields(cli, clip):
    import csv
    import io

    done = cli("classify", "--camera", str(clip), "--max-frames", "3", "--model", "v1-0.25-128", "-f", "csv")
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    good = [r for r in rows if not r["error"]]
    assert len(rows) == 3 and good, done.stderr
    for row in good:
        assert float(row["capture_ms"]) >= 0 and int(row["dropped"]) >= 0
        assert row["captured"].endswith("Z") and row["captured"] <= row["time"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_cli_stream_onto_a_full_disk_exits_4_after_its_summary(cli, clip):
    done = cli(
        "classify", "--video", str(clip), "--model", "v1-0.25-128", "-f", "jsonl", "--output", "/dev/full"
    )
    assert done.returncode == 4 and "Traceback" not in done.stderr
    summary, error = done.stderr.strip().splitlines()[-2:]
    assert "frames, " in summary and error.startswith("edgenet: error: cannot write records to /dev/full")


def test_cli_stream_table_with_output_is_a_usage_error_not_a_lost_file(cli, clip, tmp_path):
    out = tmp_path / "records.txt"
    done = cli(
        "classify", "--video", str(clip), "--model", "v1-0.25-128", "--output", str(out), "-f", "table"
    )
    assert done.returncode == 2 and "--format jsonl or csv" in done.stderr and not out.exists()


def test_cli_video_option_means_video_whatever_the_name_and_takes_folders(cli, clip, tmp_path):
    """--video FILE is a video even without a video extension; --video DIR streams the videos in it."""
    folder = tmp_path / "recordings"
    (folder / "later").mkdir(parents=True)
    (folder / "b.avi").write_bytes(clip.read_bytes())
    (folder / "later" / "a.mts").write_bytes(clip.read_bytes())  # MJPG AVI inside; FFmpeg sniffs it
    (folder / "notes.txt").write_text("not a video")
    bare = tmp_path / "camera-dump"
    bare.write_bytes(clip.read_bytes())
    done = cli(
        "classify", "--video", str(folder), "--video", str(bare), "--model", "v1-0.25-128", "-f", "jsonl"
    )
    assert done.returncode == 0, done.stderr
    found = records(done.stdout)
    expected = [str(folder / "b.avi"), str(folder / "later" / "a.mts"), str(bare)]
    assert [r["source"] for r in found] == [p for p in expected for _ in range(FRAMES)]
    assert [r["frame"] for r in found] == list(range(FRAMES)) * 3


def test_a_cut_off_video_ends_with_an_error_record(cli, clip, tmp_path):
    data = clip.read_bytes()
    half = tmp_path / "half.avi"
    half.write_bytes(data[: len(data) // 2])
    done = cli("classify", "--video", str(half), "--model", "v1-0.25-128", "--format", "jsonl", "--quiet")
    found = records(done.stdout)
    assert done.returncode == 1 and "truncated" in found[-1]["error"]
    assert " @ 0x" not in done.stderr  # FFmpeg's own "[mjpeg @ 0x...]" lines stay out of the logs
    assert all("error" not in r for r in found[:-1]) and len(found) > 1


def test_csv_runs_appended_to_one_file_stay_in_their_columns(cli, clip, photos, tmp_path):
    """Images, then a video, appended to one --output: one header, every row under it; a run of another
    layout (regions) is refused (exit 2) before it writes, and the file is left as it was."""
    import csv

    out = tmp_path / "runs.csv"
    model = ("--model", "v1-0.25-128", "-f", "csv", "-q", "-o", str(out))
    assert cli("classify", str(photos[0]), *model).returncode == 0
    done = cli("classify", "--video", str(clip), "--max-frames", "2", *model)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert text.count("source,frame,") == 1 and len(rows) == 3
    assert all(None not in row for row in rows)  # no row longer than the header
    image, *frames = rows
    assert image["capture_ms"] == "" and float(image["decode_ms"]) > 0
    for frame in frames:
        assert float(frame["capture_ms"]) >= 0 and frame["captured"].endswith("Z")
        assert frame["time"].endswith("Z") and float(frame["total_ms"]) > 0
    refused = cli("classify", str(photos[0]), "--roi", "door=0,0,0.5,0.5", *model)
    assert refused.returncode == 2 and "other columns" in refused.stderr, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and out.read_text() == text


def test_csv_begun_by_an_earlier_edgenet_gets_rows_in_its_own_columns(cli, photos, tmp_path):
    """A cron job appending to last release's CSV (no capture_ms, captured, dropped) keeps working: the rows
    follow the file's header, and what it lacks is said once."""
    import csv

    old = "source,frame,model,delegate,delegate_reason,index,label,score,top_k,decode_ms,preprocess_ms,"
    old += "inference_ms,postprocess_ms,total_ms,time,error,saved"
    out = tmp_path / "old.csv"
    out.write_text(
        old + "\nx.jpg,0,v2,xnnpack,,1,goldfish,0.9,1:goldfish:0.9,1,1,1,1,4,2026-01-01T00:00:00Z,,\n"
    )
    done = cli("classify", str(photos[0]), "--model", "v1-0.25-128", "-f", "csv", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "earlier edgenet: capture_ms, captured, dropped left out" in done.stderr
    rows = list(csv.DictReader(out.read_text().splitlines()))
    assert len(rows) == 2 and all(None not in row for row in rows)
    assert rows[1]["source"] == str(photos[0]) and float(rows[1]["inference_ms"]) > 0 and rows[1]["top_k"]
