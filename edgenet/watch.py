"""Watching folders (`--watch`): the images already there that have no record yet, then each new image once
it has finished arriving, for as long as the run lasts (a service rather than a cron timer).

Change notifications come from inotify through watchfiles. A file is taken when its size and mtime have not
moved for `settle` seconds, so a photo still being copied (scp, a camera's FTP upload) is read whole, once.
With --state the same incremental state (and lock) as cron runs decides what is new; without, the files seen
in this run. Only the capture thread runs this; `interrupt()` (any thread) ends it promptly.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator

from edgenet.errors import DeviceError
from edgenet.imaging import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS

SETTLE_S = 1.0  # a file unchanged this long has finished arriving
POLL_S = 0.25  # how often files still settling are looked at again
CHECK_FOLDERS_S = 2.0  # how often the watched folders are checked for being replaced or removed
EMPTY_SETTLE_S = 10.0  # an empty file waits at least this long (an uploader may create it, then stall)


def file_state(path: str) -> tuple[int, int] | None:
    """(size, mtime_ns) of a regular file, or None. An empty file counts: one that stays empty (for
    EMPTY_SETTLE_S at least) gets its error record, as in a run without --watch."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_size, info.st_mtime_ns) if stat.S_ISREG(info.st_mode) else None


def _identity(folder: str) -> tuple[int, int] | None:
    try:
        info = os.stat(folder)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


class FolderWatch:
    """Frames (edgenet.sources.Frame) of the images in `folders`: the backlog, then each new one."""

    def __init__(
        self,
        folders: list[str],
        backlog: list[str],
        *,
        is_new=None,
        settle: float = SETTLE_S,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
        before_read=None,
        after_read=None,
    ):
        self.given = list(folders)  # sources are named as the user named the folders, as the backlog's are
        self.folders = [os.path.abspath(f) for f in folders]
        self.backlog = list(backlog)
        self.is_new = is_new  # SeenState.is_new, or None: new means not read in this run
        self.settle = settle
        self.max_pixels = max_pixels
        self.before_read, self.after_read = before_read, after_read
        self._stop = threading.Event()
        self._read: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) read in this run
        self._settling: dict[str, tuple[tuple[int, int], float]] = {}  # path -> (state, since when)
        self.start_index = 0  # frames are numbered on from here (after the run's error records)

    def interrupt(self) -> None:
        self._stop.set()

    def _as_given(self, path: str) -> str:
        """A path under a watched folder, named from the folder as the user gave it."""
        for folder, given in zip(self.folders, self.given, strict=True):
            if path.startswith(folder + os.sep):
                return os.path.join(given, os.path.relpath(path, folder))
        return path

    def _rescan(self) -> None:
        """Every wanted file in the watched folders now starts settling: for a folder that was replaced
        or came back, whose files inotify could not report."""
        for given in self.given:
            for root, _dirs, files in os.walk(given):
                for path in sorted(os.path.join(root, name) for name in files):
                    if self._wanted(path):
                        self._settling.setdefault(path, (file_state(path), time.monotonic()))

    def _wanted(self, path: str) -> bool:
        if not path.lower().endswith(IMAGE_EXTENSIONS) or os.path.basename(path).startswith("."):
            return False  # not an image, or a temporary file (rsync's .name.XXXXXX)
        state = file_state(path)
        if state is None or self._read.get(path) == state:
            return False
        return self.is_new(path) if self.is_new is not None else True

    def _frames(self, paths: list[str]) -> Iterator:
        from edgenet.sources import image_frames

        for frame in image_frames(
            paths,
            start_index=self.start_index,
            max_pixels=self.max_pixels,
            before_read=self.before_read,
            after_read=self.after_read,
        ):
            self.start_index += 1
            key = frame.file_key or file_state(frame.source)  # an error record counts as read too
            if key is not None:
                self._read[frame.source] = key
            yield frame

    def _settled(self) -> list[str]:
        """The settling files whose size and mtime have not moved for `settle` seconds, in name order."""
        now = time.monotonic()
        ready = []
        for path, (state, since) in list(self._settling.items()):
            current = file_state(path)
            if current is None:
                del self._settling[path]  # gone, or emptied again
            elif current != state:
                self._settling[path] = (current, now)
            elif now - since >= (self.settle if state[0] else max(self.settle, EMPTY_SETTLE_S)):
                del self._settling[path]
                ready.append(path)
        return sorted(ready)

    def __iter__(self) -> Iterator:
        try:
            import watchfiles  # noqa: F401
        except ImportError:
            raise DeviceError(
                "--watch needs watchfiles: pip install watchfiles (it has wheels for x86-64 and ARM)"
            ) from None
        yield from self._frames(self.backlog)
        while not self._stop.is_set():
            yield from self._watch_once()

    def _watch_once(self) -> Iterator:
        """Watch until stopped, or until a watched folder is replaced or comes back (inotify follows the
        old folder: the watch is started again, on what is there now)."""
        from watchfiles import Change, watch

        from edgenet.console import warn

        identities = [_identity(folder) for folder in self.folders]
        present = [folder for folder, ident in zip(self.folders, identities, strict=True) if ident]
        gone = [given for given, ident in zip(self.given, identities, strict=True) if not ident]
        if gone:
            warn(f"the watched folder {', '.join(gone)} is gone: waiting for it to come back")
        if not present:
            while not self._stop.wait(CHECK_FOLDERS_S):
                if any(_identity(folder) for folder in self.folders):
                    self._rescan()
                    break
            return
        wanted = {Change.added, Change.modified}
        changes = watch(
            *present,
            debounce=int(POLL_S * 1000),
            step=50,
            stop_event=self._stop,
            rust_timeout=int(POLL_S * 1000),
            yield_on_timeout=True,
            raise_interrupt=False,
            ignore_permission_denied=True,
        )
        checked = time.monotonic()
        started = False
        for batch in changes:
            if self._stop.is_set():
                return
            if not started:  # the watch is on now: what arrived since the folders were listed (the
                started = True  # backlog was listed before the model loaded) has no event to come
                self._rescan()
            for change, path in batch:
                path = self._as_given(path)
                if change in wanted and self._wanted(path):
                    self._settling.setdefault(path, (file_state(path), time.monotonic()))
            ready = [path for path in self._settled() if self._wanted(path)]
            yield from self._frames(ready)
            if time.monotonic() - checked >= CHECK_FOLDERS_S:
                checked = time.monotonic()
                if [_identity(folder) for folder in self.folders] != identities:
                    self._rescan()  # what arrived in the new folder unseen
                    return
