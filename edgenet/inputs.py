"""Which files the command-line inputs name: files as given, folders walked, globs expanded; and every
candidate left out, so that none is skipped silently. Lists names only: nothing here opens a file."""

from __future__ import annotations

import glob
import os
import stat
from collections.abc import Iterable

from edgenet.imaging import IMAGE_EXTENSIONS
from edgenet.lightclass import lightclass

VIDEO_EXTENSIONS = (
    ".avi",
    ".mp4",
    ".m4v",
    ".mkv",
    ".mov",
    ".webm",
    ".mpg",
    ".mpeg",
    ".ts",
    ".mts",
    ".m2ts",
    ".mjpeg",
    ".mjpg",
    ".h264",
    ".h265",
    ".hevc",
    ".wmv",
    ".flv",
    ".3gp",
    ".ogv",
)


def is_video(path: str) -> bool:
    return str(path).lower().endswith(VIDEO_EXTENSIONS)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


@lightclass
class Inputs:
    """What the command-line inputs expand to, and every candidate that was left out.

    `paths`: the files to read, in order. `failures`: (source, error) pairs, one error record each (a folder
    that cannot be listed). `warnings`: one line each, for candidates skipped on purpose (FIFOs, links to
    folders). `other_files`: (extension, count) of files in the folders that are not of the kind looked for.
    """

    paths: tuple[str, ...]
    failures: tuple[tuple[str, str], ...] = ()
    warnings: tuple[str, ...] = ()
    other_files: tuple[tuple[str, int], ...] = ()


def expand_inputs(paths: Iterable[str], videos: bool = False) -> list[str]:
    """The files of find_inputs(), as a list (for callers that report nothing else)."""
    return list(find_inputs(paths, videos).paths)


def find_inputs(paths: Iterable[str], videos: bool = False) -> Inputs:
    """Files as given; folders recursively (sorted, image extensions only, or video extensions with
    `videos`); globs expanded and sorted.

    Paths that do not exist, and broken links a glob matched, stay in the list so that each gets an error
    record. Folders a glob matched are left out, as before (give the folder itself to walk it)."""
    wanted = is_video if videos else _is_image
    items: list[str] = []
    report = _Skipped()
    for raw in paths:
        if os.path.isdir(raw):
            items.extend(_walk(raw, wanted, report))
        elif os.path.exists(raw) or os.path.islink(raw):
            items.append(raw)
        elif glob.has_magic(raw):
            matched = sorted(p for p in glob.glob(raw, recursive=True) if not os.path.isdir(p))
            items.extend(matched if matched else [raw])
        else:
            items.append(raw)
    return report.inputs(items)


class _Skipped:
    """What a folder walk left out, counted."""

    def __init__(self) -> None:
        self.failures: list[tuple[str, str]] = []
        self.special: list[str] = []
        self.linked_folders: list[str] = []
        self.other: dict[str, int] = {}

    def inputs(self, items: list[str]) -> Inputs:
        warnings = []
        if self.special:
            warnings.append(
                f"skipped {len(self.special)} file(s) that are not regular files (FIFO, socket or device), "
                f"e.g. {self.special[0]}"
            )
        if self.linked_folders:
            warnings.append(
                f"skipped {len(self.linked_folders)} symbolic link(s) to folders, e.g. "
                f"{self.linked_folders[0]}: give the folder itself to classify what it holds"
            )
        return Inputs(tuple(items), tuple(self.failures), tuple(warnings), tuple(sorted(self.other.items())))


def _walk(top: str, wanted, report: _Skipped) -> list[str]:
    found = []

    def cannot_list(exc: OSError) -> None:
        report.failures.append((exc.filename or top, f"cannot list folder: {exc.strerror or exc}"))

    for root, dirs, files in os.walk(top, onerror=cannot_list):
        dirs.sort()
        for name in dirs:
            if os.path.islink(os.path.join(root, name)):
                report.linked_folders.append(os.path.join(root, name))
        for name in files:
            path = os.path.join(root, name)
            if not wanted(name):
                extension = os.path.splitext(name)[1].lower() or "(none)"
                report.other[extension] = report.other.get(extension, 0) + 1
            elif _is_special(path):
                report.special.append(path)
            else:
                found.append(path)
    return sorted(found)


def _is_special(path: str) -> bool:
    """FIFOs, sockets and devices in a folder: reading one can block forever, so folders skip them."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False  # a dangling link: kept, so that it gets its error record
