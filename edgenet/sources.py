"""Frame sources: image files, folders and globs; video files; cameras (OpenCV/V4L2, picamera2).

Only this module opens files for pixels and cameras. Video and camera frames carry `captured` (time.time()
when the frame arrived) and `capture_ms` (how long the read waited for it); `decode_ms` is the decode alone.
"""

from __future__ import annotations

import glob
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

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


def _cv2():
    from edgenet.imaging import opencv

    return opencv()


def _ms_since(started_ns: int) -> float:
    return (time.perf_counter_ns() - started_ns) / 1e6


def file_frames(
    paths, every: int, decode_threads: int | None = None, videos=frozenset(), max_pixels=DEFAULT_MAX_PIXELS
) -> Iterator[Frame]:
    """Images and videos in the order given: images numbered across the run, each video's frames from 0.
    A path is a video by its extension, or because it came with --video (`videos`)."""
    image_index = 0
    for path in paths:
        if path in videos or is_video(path):
            yield from video_frames(path, every, decode_threads)
        else:
            yield from image_frames([path], start_index=image_index, max_pixels=max_pixels)
            image_index += 1


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
    handed to a second thread and back (two context switches a frame); docs/performance.md, "Streams", gives
    what capping saves.
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
