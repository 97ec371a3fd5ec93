"""Frame sources: image files, folders and globs (video files and cameras build on the same Frame).

Only this module opens files for pixels and cameras.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from edgenet.errors import EdgenetError
from edgenet.imaging import IMAGE_EXTENSIONS, read_image


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


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def expand_inputs(paths: Iterable[str]) -> list[str]:
    """Files as given; folders recursively (sorted, image extensions only); globs expanded and sorted.

    Paths that do not exist stay in the list so that each gets an error record.
    """
    items: list[str] = []
    for raw in paths:
        if os.path.isdir(raw):
            found = []
            for root, dirs, files in os.walk(raw):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in files if _is_image(f))
            items.extend(sorted(found))
        elif os.path.exists(raw) or os.path.islink(raw):
            items.append(raw)
        elif glob.has_magic(raw):
            matched = sorted(p for p in glob.glob(raw, recursive=True) if os.path.isfile(p))
            items.extend(matched if matched else [raw])
        else:
            items.append(raw)
    return items


def image_frames(paths: list[str], start_index: int = 0) -> Iterator[Frame]:
    """Decode each image in turn; a failure is a Frame with `error`, never an exception."""
    for offset, path in enumerate(paths):
        started = time.perf_counter_ns()
        try:
            if glob.has_magic(path) and not os.path.exists(path):
                raise EdgenetError("no file matches this pattern")
            image = read_image(path)
            error = None
        except EdgenetError as exc:
            image, error = None, str(exc)
        except MemoryError:
            image, error = None, "cannot decode image: out of memory; resize it first"
        decode_ms = (time.perf_counter_ns() - started) / 1e6
        yield Frame(source=path, index=start_index + offset, image=image, decode_ms=decode_ms, error=error)
