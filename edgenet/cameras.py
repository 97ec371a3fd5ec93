"""Live cameras: OpenCV/V4L2 devices, network streams and the Raspberry Pi camera (picamera2), opened with
a diagnosis when they cannot be, locked by the run, and reopened with backoff when they are lost.

Frames carry `captured` (time.time() when the frame arrived) and `capture_ms` (how long the read waited).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

from edgenet.errors import EdgenetError, one_line
from edgenet.sources import Frame, _cv2, _ms_since

NETWORK_OPEN_TIMEOUT_MS = 10_000  # rtsp://, http://... cameras: give up opening after this long
NETWORK_READ_TIMEOUT_MS = 5_000  # and count a stream that stops sending for this long as a lost camera
RECONNECT_BACKOFF_S = 0.5  # first wait before reopening a lost camera; doubles per attempt
RECONNECT_BACKOFF_MAX_S = 8.0


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
    import stat

    try:
        mode = os.stat(value).st_mode
    except (OSError, ValueError):
        mode = 0
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):  # opening a FIFO waits for a writer, past any SIGTERM
        raise UsageError(f"--camera {value}: a FIFO or socket cannot be opened as a camera")
    return CameraSpec("opencv", value, f"camera:{value}")


def camera_diagnostics(dev_root: str = "/dev") -> str:
    """What was found: video devices and whether we may open them, and picamera2; then what to try."""
    from edgenet.host import group_names, picamera2_status, video_devices

    devices = video_devices(dev_root)
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
        member = "video" in group_names()
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
        from edgenet.host import picamera2_status

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
    `interval` (seconds): a snapshot loop. After each frame it sleeps (no grabbing, no decoding, no core
    spinning), then grabs and drops the frame the driver kept meanwhile and yields the next, fresh one.
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
        interval: float | None = None,
    ):
        self.opener = opener
        self.interval = interval
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

    def release(self) -> None:
        """Release a camera that was opened but never iterated (the run ended before capture started)."""
        if self._capture is not None:
            self._capture.release()
            self._capture = None

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

    def _lost(self, index: int, captured: float) -> Frame:
        """The camera gave no frame: release it, count the loss, and say so in an error frame."""
        self.losses += 1
        self._capture.release()
        self._capture = None
        what = (
            f"reopening (up to {self.reconnect} attempts)"
            if self.reconnect
            else "not reopening (--reconnect 0)"
        )
        return Frame(
            source=self.name,
            index=index,
            image=None,
            decode_ms=0.0,
            captured=captured,
            error=f"camera lost: {self.name} gave no frame; {what}",
        )

    def __iter__(self) -> Iterator[Frame]:
        from edgenet.errors import DeviceError

        if self._capture is None:
            self._capture = self.opener()
        index = 0
        stale = 0  # frames to grab and drop: the one the driver kept while a snapshot loop slept
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
                    yield self._lost(index, captured)
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
                if stale:
                    stale -= 1
                elif index % self.every == 0:
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
                    if self.interval:
                        if self._stop.wait(self.interval):
                            break
                        stale = 1
                index += 1
        finally:
            if self._capture is not None:
                self._capture.release()
                self._capture = None
