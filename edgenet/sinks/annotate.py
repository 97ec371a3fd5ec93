"""Annotated output (`--annotate OUT`): the frame with what the model found drawn on a COPY, after inference
(never on the pixels the model saw): the top-k labels and scores (classification), boxes with their labels
(detection), the frame's latency in the bottom-left corner.

`draw(image, record)` is a pure function. A folder gets one annotated JPEG per image (or per frame of a
stream), written atomically; a video file name gets an annotated video of the stream, its codec chosen from
the extension (VIDEO_CODECS).
"""

from __future__ import annotations

import os
import re

import numpy as np

from edgenet.errors import DeviceError, UsageError
from edgenet.sinks import Sink

# what cv2.VideoWriter (FFmpeg) writes here and cv2.VideoCapture and players read back
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
JPEG_QUALITY = 90
CAMERA_RATE_FRAMES = 10  # a camera's annotated video: its frame rate is measured over this many records
PALETTE = ((0, 200, 255), (255, 140, 0), (60, 220, 60), (255, 60, 200), (0, 90, 255), (200, 200, 0))


def ascii_text(text: str) -> str:
    """OpenCV's fonts draw ASCII only: anything else becomes '?'."""
    return str(text).encode("ascii", "replace").decode("ascii")


def short_label(label) -> str:
    return str(label).split(",")[0].strip()


def _text_block(image, lines, origin, scale: float, color=(255, 255, 255), below: bool = True) -> None:
    """Lines of text on a dark box, top-left at `origin` (or bottom-left when `below` is False)."""
    import cv2

    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, max(1, round(scale * 1.6))
    sizes = [cv2.getTextSize(line, font, scale, thickness) for line in lines]
    line_height = max(h + base for (_, h), base in sizes) + max(2, round(4 * scale))
    width = max(w for (w, _), _ in sizes) + 2 * max(2, round(4 * scale))
    x, y = origin
    x = min(max(0, x), max(0, image.shape[1] - width))
    top = y if below else y - line_height * len(lines)
    top = min(max(0, top), max(0, image.shape[0] - line_height * len(lines)))
    cv2.rectangle(image, (x, top), (x + width, top + line_height * len(lines)), (0, 0, 0), cv2.FILLED)
    for number, line in enumerate(lines):
        baseline = top + line_height * (number + 1) - max(2, round(5 * scale))
        cv2.putText(image, line, (x + max(2, round(4 * scale)), baseline), font, scale, color, thickness)


def _latency_line(record: dict) -> str:
    latency = record.get("latency_ms") or {}
    if "inference" not in latency:
        return ""
    return f"inference {latency['inference']:.1f} ms, frame {latency.get('total', 0):.1f} ms"


def _detection_caption(detection: dict) -> str:
    caption = f"{short_label(detection.get('label', detection.get('index', '?')))} {detection['score']:.2f}"
    top = ((detection.get("classification") or {}).get("top_k")) or []
    if top:
        caption += f": {short_label(top[0]['label'])} {top[0]['score']:.2f}"
    return ascii_text(caption)


def _draw_detections(image, detections, scale: float, text_scale: float) -> None:
    import cv2

    thickness = max(1, round(text_scale * 3))
    for detection in detections:
        box = detection.get("box") or {}
        corners = [round(box.get(k, 0) * scale) for k in ("xmin", "ymin", "xmax", "ymax")]
        color = PALETTE[int(detection.get("index", 0)) % len(PALETTE)]
        cv2.rectangle(image, tuple(corners[:2]), tuple(corners[2:]), color, thickness)
        _text_block(
            image, [_detection_caption(detection)], (corners[0], corners[1]), text_scale, color, False
        )


def draw(image: np.ndarray, record: dict, scale: float = 1.0) -> np.ndarray:
    """`image` (HxWx3 BGR) with `record` drawn on it, as a new array; `image` is left as it is. `scale`: the
    size of `image` relative to the frame the record's boxes are in (e.g. a preview resized to 640 px)."""
    annotated = np.ascontiguousarray(image).copy()
    text_scale = max(0.4, min(annotated.shape[:2]) / 600.0)
    margin = max(4, round(8 * text_scale))
    if record.get("detections") is not None:
        _draw_detections(annotated, record["detections"], scale, text_scale)
    elif record.get("top_k") is not None:
        lines = [ascii_text(f"{p['score']:.3f} {short_label(p['label'])}") for p in record["top_k"]]
        _text_block(annotated, lines or ["(nothing above the threshold)"], (margin, margin), text_scale)
    latency = _latency_line(record)
    if latency:
        _text_block(
            annotated, [latency], (margin, annotated.shape[0] - margin), text_scale * 0.8, below=False
        )
    return annotated


def encode_jpeg(image: np.ndarray, quality: int = JPEG_QUALITY) -> bytes:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise DeviceError("OpenCV could not encode a JPEG")  # never seen with an HxWx3 uint8 frame
    return data.tobytes()


def output_kind(out: str) -> str:
    """ "video" or "folder" for `--annotate OUT`; a UsageError for what is neither."""
    extension = os.path.splitext(out)[1].lower()
    if extension in VIDEO_CODECS:
        return "video"
    from edgenet.sources import VIDEO_EXTENSIONS

    if extension in IMAGE_EXTENSIONS or extension in VIDEO_EXTENSIONS:
        raise UsageError(
            f"--annotate {out}: give a folder (one annotated JPEG per image or frame) or a video file name "
            f"ending in {' '.join(VIDEO_CODECS)}"
        )
    return "folder"


def safe_stem(source: str, limit: int = 60) -> str:
    """A file-name stem from a record's source (a path, camera:0, rtsp://...)."""
    stem = os.path.splitext(os.path.basename(str(source).rstrip("/")))[0] or "frame"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:limit] or "frame"


class AnnotatedImages(Sink):
    """One annotated JPEG per image (`name.jpg`; `name-2.jpg`... when two inputs share a name), or per frame
    of a stream (`name-000042.jpg`), written atomically into `folder`."""

    keeps = True
    wants_pixels = True

    def __init__(self, folder: str, streaming: bool):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--annotate {folder}: cannot create the folder: {exc.strerror}") from None
        self.folder = folder
        self.streaming = streaming
        self._taken: set[str] = set()
        self.written = 0

    def name_for(self, record: dict) -> str:
        stem = safe_stem(record.get("source", "frame"))
        if self.streaming:
            return f"{stem}-{int(record.get('frame', 0)):06d}.jpg"
        name, number = f"{stem}.jpg", 1
        while name in self._taken:
            number += 1
            name = f"{stem}-{number}.jpg"
        self._taken.add(name)
        return name

    def write(self, result) -> None:
        if result.image is None or "error" in result.record:
            return
        from edgenet.sinks.atomic import write_atomic

        path = os.path.join(self.folder, self.name_for(result.record))
        try:
            write_atomic(path, encode_jpeg(draw(result.image, result.record)))
        except OSError as exc:
            raise DeviceError(
                f"cannot write the annotated image {path}: {exc.strerror or exc}; free space or choose "
                "another --annotate folder"
            ) from None
        self.written += 1


def file_frame_rate(source: str, every: int = 1) -> float | None:
    """The frame rate of the annotated video of a video file (its own rate, divided by --every); None for
    a source that is not a file (a camera: the rate is measured from its frames)."""
    if not os.path.isfile(source):
        return None
    import cv2

    capture = cv2.VideoCapture(source)
    try:
        rate = capture.get(cv2.CAP_PROP_FPS)
    finally:
        capture.release()
    if not rate or rate != rate or not 0.5 <= rate <= 1000:
        rate = 25.0  # a file that does not say: the usual PAL rate
    return rate / max(1, every)


def measured_rate(times: list[float], default: float = 10.0) -> float:
    """Records per second over `times` (seconds), between 1 and 120; `default` when it cannot be said."""
    if len(times) < 2 or times[-1] <= times[0]:
        return default
    return min(120.0, max(1.0, (len(times) - 1) / (times[-1] - times[0])))


class AnnotatedVideo(Sink):
    """The annotated frames of a stream as one video file (frames of other sizes are resized to the first's).
    A video file's rate is kept (divided by --every); a camera's is measured over its first records (the
    rate records come at, so that the video plays in real time). MP4 is playable once the run has ended
    (its index is written at close); an .avi (MJPG) stays readable up to its last frame even after a crash."""

    wants_pixels = True

    def __init__(self, path: str, every: int = 1):
        self.path = path
        self.every = every
        self.fourcc = VIDEO_CODECS[os.path.splitext(path)[1].lower()]
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._pending: list[tuple[float, np.ndarray]] = []  # a camera's first frames, until its rate is known
        self.written = 0

    def write(self, result) -> None:
        if result.image is None or "error" in result.record:
            return
        frame = draw(result.image, result.record)
        if self._writer is None:
            rate = file_frame_rate(str(result.record.get("source", "")), self.every)
            if rate is None:
                captured = getattr(result.frame, "captured", None)
                self._pending.append((captured if captured is not None else result.done, frame))
                if len(self._pending) < CAMERA_RATE_FRAMES:
                    return
                self._open(measured_rate([when for when, _ in self._pending]), frame)
                return  # this frame was the last of those pending: written by _open
            self._open(rate, frame)
        self._put(frame)

    def _open(self, rate: float, first: np.ndarray) -> None:
        import cv2

        height, width = first.shape[:2]
        self._size = (width, height)
        self._writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self.fourcc), rate, self._size)
        if not self._writer.isOpened():
            self._writer = None
            raise DeviceError(
                f"cannot write the annotated video {self.path} ({self.fourcc}): OpenCV's FFmpeg could not "
                "open it; check the folder, or use .avi"
            )
        pending, self._pending = self._pending, []
        for _, frame in pending:
            self._put(frame)

    def _put(self, frame: np.ndarray) -> None:
        import cv2

        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(frame)
        self.written += 1

    def close(self) -> None:
        if self._writer is None and self._pending:  # a short camera run: the rate of what there is
            self._open(measured_rate([when for when, _ in self._pending]), self._pending[0][1])
        if self._writer is not None:
            self._writer.release()
            self._writer = None
