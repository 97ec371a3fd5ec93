"""Frame sources: image files, folders and globs; video files; cameras (OpenCV/V4L2, picamera2).

Only this module opens files for pixels and cameras. Video and camera frames carry `captured` (time.time()
when the frame arrived) and `capture_ms` (how long the read waited for it); `decode_ms` is the decode alone.
"""

from __future__ import annotations

import glob
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgenet.errors import EdgenetError, one_line
from edgenet.imaging import DEFAULT_MAX_PIXELS, load_image
from edgenet.inputs import (  # noqa: F401 - re-exported: callers import them from here
    VIDEO_EXTENSIONS,
    Inputs,
    expand_inputs,
    find_inputs,
    is_video,
)


@dataclass(frozen=True)
class Frame:
    """One decoded frame (HxWx3 uint8, OpenCV BGR order), or why it could not be had."""

    source: str
    index: int
    image: np.ndarray | None
    decode_ms: float
    captured: float | None = None  # time.time() at capture, for streams
    error: str | None = None
    dropped: int = 0
    capture_ms: float | None = None  # streams: time spent waiting for the frame (grab), before decoding it
    file_key: tuple[int, int] | None = None  # image files: (size, mtime_ns) of the file as it was read


def image_frames(
    paths: list[str],
    start_index: int = 0,
    min_short: int | None = None,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    before_read=None,
    after_read=None,
) -> Iterator[Frame]:
    """Decode each image in turn; a failure is a Frame with `error`, never an exception.

    `min_short`: fast decode of big JPEGs (see imaging.decode_image); `max_pixels`: the largest image
    decoded (None: no cap). `before_read(path)` is called just before a file is opened and `after_read(path)`
    once it is decoded or has failed (an incremental state marks the image in progress in between); an
    exception from either stops the iteration (a state that cannot be written must not become records).
    Each Frame carries `file_key`, the (size, mtime_ns) of the file as it was read."""
    for offset, path in enumerate(paths):
        if before_read is not None:
            before_read(path)
        started = time.perf_counter_ns()
        if glob.has_magic(path) and not os.path.lexists(path):
            loaded = None
        else:
            loaded = load_image(path, min_short, max_pixels=max_pixels)
        decode_ms = (time.perf_counter_ns() - started) / 1e6
        if after_read is not None:
            after_read(path)
        yield Frame(
            source=path,
            index=start_index + offset,
            image=loaded.image if loaded else None,
            decode_ms=decode_ms,
            error=loaded.error if loaded else "no file matches this pattern",
            file_key=loaded.file_key if loaded else None,
        )


# -- video files and cameras -------------------------------------------------------------------------

NETWORK_OPEN_TIMEOUT_MS = 10_000  # rtsp://, http://... cameras: give up opening after this long
NETWORK_READ_TIMEOUT_MS = 5_000  # and count a stream that stops sending for this long as a lost camera
RECONNECT_BACKOFF_S = 0.5  # first wait before reopening a lost camera; doubles per attempt
RECONNECT_BACKOFF_MAX_S = 8.0


def _cv2():
    # OpenCV's and FFmpeg's own log lines ("[mjpeg @ 0x...] overread 8", "moov atom not found") would sit
    # between our records on stderr: each failure is our error record or one-line error already. Set these
    # variables yourself to see them. (OpenCV's own AVI reader prints a few lines straight to stderr.)
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    return cv2


def _ms_since(started_ns: int) -> float:
    return (time.perf_counter_ns() - started_ns) / 1e6


# FFmpeg renders text files as video (its tty demuxer: .txt, .nfo, .asc... shown as ANSI art): refused
TEXT_CODECS = (b"ansi", b"xbin", b"bint", b"idf\x00")
TEXT_SNIFF_BYTES = 4096


def _not_a_video(path: str) -> str | None:
    """Why a path cannot be a video file, from the file alone (before FFmpeg sees it), or None."""
    try:
        info = os.stat(path)
        if stat.S_ISFIFO(info.st_mode) or stat.S_ISSOCK(info.st_mode):
            return "cannot open video: not a regular file (a FIFO or socket)"
        if stat.S_ISDIR(info.st_mode):
            return "cannot open video: it is a folder"
        if not stat.S_ISREG(info.st_mode):
            return None  # a device node: FFmpeg's to judge
        with open(path, "rb") as handle:
            head = handle.read(TEXT_SNIFF_BYTES)
    except FileNotFoundError:
        return "cannot open video: no such file"
    except OSError as exc:
        return f"cannot open video: {exc.strerror or exc}"
    if not head:
        return "cannot open video: the file is empty (0 bytes)"
    if _is_text(head):
        return "cannot open video: this is a text file, not a video (FFmpeg would draw the text as frames)"
    return None


def _is_text(head: bytes) -> bool:
    """No NUL byte and valid UTF-8: video containers have binary headers (y4m aside: text, then pixels)."""
    import codecs

    if b"\x00" in head or head.startswith(b"YUV4MPEG2"):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def _error_frame(path: str, error: str, index: int = 0) -> Frame:
    return Frame(source=path, index=index, image=None, decode_ms=0.0, error=error)


def video_frames(path: str, every: int = 1, decode_threads: int | None = None) -> Iterator[Frame]:
    """Every frame of a video file (or every Nth), in order, numbered by its position in the file from 0.

    A file that cannot be opened, is not a video (a text file) or holds no frame is one error Frame; a frame
    that cannot be decoded is an error Frame too.
    `decode_threads` caps FFmpeg's decoder threads. Left to itself, FFmpeg decodes in other threads, which
    land on the cores inference owns: an MPEG-4 clip gets a thread per core, and an MJPG clip has every frame
    handed to a second thread and back (two context switches a frame). On 2 cores, 640x480 MJPG took
    1.0 ms of CPU a frame capped at 1 thread vs 1.09-1.19 ms uncapped (a plain cv2 read loop).
    """
    cv2 = _cv2()
    problem = _not_a_video(path)
    if problem:
        yield _error_frame(path, problem)
        return
    if decode_threads:
        capture = cv2.VideoCapture(path, cv2.CAP_ANY, [cv2.CAP_PROP_N_THREADS, int(decode_threads)])
    else:
        capture = cv2.VideoCapture(path)
    try:
        if not capture.isOpened():
            yield _error_frame(path, "cannot open video: not a video OpenCV/FFmpeg can read")
            return
        codec = int(capture.get(cv2.CAP_PROP_FOURCC) or 0) & 0xFFFFFFFF
        if codec.to_bytes(4, "little") in TEXT_CODECS:
            yield _error_frame(path, "cannot open video: FFmpeg reads this file as text art, not a video")
            return
        yield from _read_video(cv2, capture, path, every)
    finally:
        capture.release()


def _read_video(cv2, capture, path: str, every: int) -> Iterator[Frame]:
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    position = 0
    while True:
        started = time.perf_counter_ns()
        if not capture.grab():
            if declared > 1 and position < declared - 1:  # the container promised more: cut off
                yield _error_frame(
                    path, f"video ended after {position} of {declared} frames: truncated or damaged", position
                )
            elif position == 0:
                yield _error_frame(path, "the video has no frames (empty or damaged); nothing to classify")
            break
        # FFmpeg reads and decodes the frame in grab() (retrieve() converts it to BGR): for a file all of
        # it is decoding, and nothing is waited for, so capture is 0
        grab_ms = _ms_since(started)
        captured = time.time()
        if position % every == 0:
            started = time.perf_counter_ns()
            ok, image = capture.retrieve()
            decode_ms = grab_ms + _ms_since(started)
            error = None if ok and image is not None else "cannot decode video frame"
            yield Frame(
                source=path,
                index=position,
                image=image if error is None else None,
                decode_ms=decode_ms,
                captured=captured,
                error=error,
                capture_ms=0.0,
            )
        position += 1


@dataclass(frozen=True)
class CameraSpec:
    """What --camera named: kind "opencv" (index, /dev/videoN, URL) or "picamera2" (CSI camera number)."""

    kind: str
    device: int | str
    name: str  # the records' `source`: camera:0, camera:/dev/video2, camera:picamera2:0


def parse_camera(text: str) -> CameraSpec:
    """`0`, `/dev/video2`, `picamera2`, `picamera2:1`; anything else (rtsp://..., a file) goes to OpenCV."""
    from edgenet.errors import UsageError

    value = str(text).strip()
    if not value:
        raise UsageError("--camera needs a value: 0, /dev/videoN, picamera2 or picamera2:N")
    if value.isdigit():
        return CameraSpec("opencv", int(value), f"camera:{int(value)}")
    if value == "picamera2" or value.startswith("picamera2:"):
        number = value.partition(":")[2] or "0"
        if not number.isdigit():
            raise UsageError(f"--camera {value!r}: picamera2 takes a camera number, e.g. picamera2:0")
        return CameraSpec("picamera2", int(number), f"camera:picamera2:{int(number)}")
    return CameraSpec("opencv", value, f"camera:{value}")


def _group_names() -> list[str]:
    try:
        import grp

        return sorted({grp.getgrgid(g).gr_name for g in os.getgroups()})
    except (ImportError, KeyError, OSError):
        return []


def picamera2_status() -> str:
    """'importable', 'system only' (installed for the system Python, not visible here) or 'not installed'."""
    import importlib.util

    if importlib.util.find_spec("picamera2") is not None:
        return "importable"
    for base in ("/usr/lib/python3/dist-packages", "/usr/local/lib/python3/dist-packages"):
        if os.path.isdir(os.path.join(base, "picamera2")):
            return "system only"
    return "not installed"


def camera_diagnostics(dev_root: str = "/dev") -> str:
    """What was found: video devices and whether we may open them, and picamera2; then what to try."""
    devices = sorted(glob.glob(os.path.join(dev_root, "video*")))
    found = []
    blocked = []
    for device in devices:
        if os.access(device, os.R_OK | os.W_OK):
            found.append(device)
        else:
            found.append(f"{device} (no permission)")
            blocked.append(device)
    picam = picamera2_status()
    facts = [f"found {', '.join(found)}" if found else f"no {dev_root}/video* devices", f"picamera2 {picam}"]
    tips = []
    if blocked:
        groups = _group_names()
        member = "video" in groups
        tips.append(
            "add yourself to the video group (sudo usermod -aG video $USER, then log in again)"
            if not member
            else "check the device's permissions (ls -l /dev/video*)"
        )
    if not devices:
        tips.append("plug in a USB camera and check `ls /dev/video*` (and dmesg)")
    elif not blocked:
        tips.append(f"try another device ({', '.join(devices[:3])}) or close other programs using the camera")
    if picam == "system only":
        tips.append(
            "for a Raspberry Pi camera use --camera picamera2 from a venv made with "
            "`python3 -m venv --system-site-packages`"
        )
    elif picam == "not installed":
        tips.append("for a Raspberry Pi camera install python3-picamera2 (apt) and use --camera picamera2")
    tips.append("or classify a recording with --video FILE")
    return f"{'; '.join(facts)}. Try: {'; '.join(tips)}"


class _Picamera2Capture:
    """picamera2 behind the grab()/retrieve() shape of cv2.VideoCapture. Frames come as BGR ("RGB888")."""

    def __init__(self, number: int, width: int | None, height: int | None, fps: float | None):
        from picamera2 import Picamera2

        self.camera = Picamera2(number)
        controls = {"FrameRate": float(fps)} if fps else {}
        config = self.camera.create_video_configuration(
            main={"size": (width or 640, height or 480), "format": "RGB888"}, controls=controls
        )
        self.camera.configure(config)
        self.camera.start()
        self._image = None

    def isOpened(self) -> bool:  # noqa: N802 - the cv2.VideoCapture name
        return True

    def grab(self) -> bool:
        self._image = self.camera.capture_array("main")
        return self._image is not None

    def retrieve(self):
        image = self._image
        if image is not None and image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        return image is not None, image

    def release(self) -> None:
        try:
            self.camera.stop()
        finally:
            self.camera.close()


def open_camera(
    spec: CameraSpec, width: int | None = None, height: int | None = None, fps: float | None = None
):
    """Open the camera (a grab()/retrieve()/release() object) or raise DeviceError saying what was found."""
    from edgenet.errors import DeviceError

    if spec.kind == "picamera2":
        status = picamera2_status()
        if status != "importable":
            raise DeviceError(
                f"cannot open {spec.name}: picamera2 is {status} in this Python; {camera_diagnostics()}"
            )
        try:
            return _Picamera2Capture(int(spec.device), width, height, fps)
        except Exception as exc:  # IndexError (no camera), RuntimeError (busy): libcamera says why
            reason = one_line(exc, 200)
            raise DeviceError(f"cannot open {spec.name}: {reason}; {camera_diagnostics()}") from None
    device = spec.device
    node = f"/dev/video{device}" if isinstance(device, int) else str(device)
    is_node = isinstance(device, int) or node.startswith("/dev/")
    if is_node and sys.platform.startswith("linux") and not os.path.exists(node):
        raise DeviceError(f"cannot open {spec.name}: {node} does not exist; {camera_diagnostics()}")
    if is_node and os.path.exists(node) and not os.access(node, os.R_OK | os.W_OK):
        raise DeviceError(f"cannot open {spec.name}: no permission to open {node}; {camera_diagnostics()}")
    cv2 = _cv2()
    is_url = "://" in node
    if is_node and sys.platform.startswith("linux"):
        capture = cv2.VideoCapture(device, cv2.CAP_V4L2)
    elif is_url:  # a network camera that does not answer must not hold the run (FFmpeg waits 30 s or more)
        timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_OPEN_TIMEOUT_MS]
        timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, NETWORK_READ_TIMEOUT_MS]
        capture = cv2.VideoCapture(device, cv2.CAP_FFMPEG, timeouts)
    else:
        capture = cv2.VideoCapture(device)
    if not capture.isOpened():
        capture.release()
        if is_url:
            raise DeviceError(
                f"cannot open {spec.name}: no video stream came from that address (waited up to "
                f"{NETWORK_OPEN_TIMEOUT_MS / 1000:g} s); check the URL, the credentials in it and that the "
                "camera answers (e.g. ffprobe URL)"
            )
        raise DeviceError(f"cannot open {spec.name}: OpenCV could not open it; {camera_diagnostics()}")
    if is_node:
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))  # USB cameras' fast mode
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued seconds ago
    if width:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    if height:
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    if fps:
        capture.set(cv2.CAP_PROP_FPS, fps)
    return capture


class CameraFrames:
    """Frames from a live camera, numbered from 0 by capture; a lost camera is reopened with backoff.

    `opener()` returns a grab()/retrieve()/release() object (cv2.VideoCapture or picamera2); it is called
    once at the start and again after each loss, so tests can hand in a video file or a capture that fails.
    Each loss is one error Frame. After `reconnect` failed reopening attempts the iteration raises
    DeviceError. Every `every`th frame is decoded and yielded; the others are grabbed and skipped.
    `interrupt()` may be called from another thread: the loop stops at its next frame or backoff wait.
    """

    def __init__(
        self,
        opener,
        name: str,
        *,
        reconnect: int = 5,
        every: int = 1,
        backoff: float = RECONNECT_BACKOFF_S,
        first_capture=None,
    ):
        self.opener = opener
        self.name = name
        self.reconnect = reconnect
        self.every = max(1, every)
        self.backoff = backoff
        self.losses = 0
        self._capture = first_capture
        self._pending: tuple[float, float] | None = None  # (capture_ms, captured) grabbed on reopening
        self._stop = threading.Event()

    def interrupt(self) -> None:
        self._stop.set()

    def _reopen(self) -> bool:
        delay = self.backoff
        for _attempt in range(self.reconnect):
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, RECONNECT_BACKOFF_MAX_S)
            try:
                capture = self.opener()
            except EdgenetError:
                continue
            started = time.perf_counter_ns()
            if capture.grab():
                self._capture = capture
                self._pending = (_ms_since(started), time.time())
                return True
            capture.release()
        return False

    def __iter__(self) -> Iterator[Frame]:
        from edgenet.errors import DeviceError

        if self._capture is None:
            self._capture = self.opener()
        index = 0
        try:
            while not self._stop.is_set():
                if self._pending is not None:  # the frame grabbed while reopening
                    capture_ms, captured = self._pending
                    self._pending = None
                    ok = True
                else:
                    started = time.perf_counter_ns()
                    ok = self._capture.grab()
                    capture_ms, captured = _ms_since(started), time.time()
                if not ok:
                    if self._stop.is_set():
                        break
                    if index == 0:
                        raise DeviceError(f"{self.name} opened but gave no frame; {camera_diagnostics()}")
                    self.losses += 1
                    self._capture.release()
                    self._capture = None
                    what = (
                        f"reopening (up to {self.reconnect} attempts)"
                        if self.reconnect
                        else "not reopening (--reconnect 0)"
                    )
                    yield Frame(
                        source=self.name,
                        index=index,
                        image=None,
                        decode_ms=0.0,
                        captured=captured,
                        error=f"camera lost: {self.name} gave no frame; {what}",
                    )
                    index += 1
                    if not self._reopen():
                        if self._stop.is_set():
                            break
                        raise DeviceError(
                            f"{self.name} was lost and did not come back after "
                            f"{self.reconnect} reopening attempt(s); check its cable and power "
                            "(dmesg), then run again"
                        )
                    continue
                if index % self.every == 0:
                    started = time.perf_counter_ns()
                    ok, image = self._capture.retrieve()
                    decode_ms = _ms_since(started)
                    error = None if ok and image is not None else "cannot decode camera frame"
                    yield Frame(
                        source=self.name,
                        index=index,
                        image=image if error is None else None,
                        decode_ms=decode_ms,
                        captured=captured,
                        error=error,
                        capture_ms=capture_ms,
                    )
                index += 1
        finally:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
