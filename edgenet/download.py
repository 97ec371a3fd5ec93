"""Bytes from a mirror folder, a URL or a .tgz member into an open file: bounded, stoppable, never blocking.

- A mirror entry that is not a regular file (a FIFO, a socket, a device) is never opened: opening a FIFO waits
  for a writer for ever, and reading a device may never end.
- Every copy has a byte limit (the catalog's size, or a cap) checked before anything is written where the size
  is known in advance (a file's size, a Content-Length, a tar member's header) and while copying otherwise.
- `should_stop` (a callable, e.g. "has SIGTERM arrived?") is looked at every STOP_POLL_S even while a slow
  server sends nothing: the transfer runs in a worker thread and is cut off by shutting its socket down. The
  socket keeps its DOWNLOAD_TIMEOUT_S timeout for servers that stall when nobody asks to stop.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from edgenet.errors import Interrupted, one_line

DOWNLOAD_TIMEOUT_S = 30
STOP_POLL_S = 0.2
CHUNK = 1 << 20

StopCheck = Callable[[], bool] | None


class Unusable(Exception):
    """This source cannot give the file (its message says why); the next source may."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def open_regular(path: str | os.PathLike, limit: int | None = None) -> BinaryIO:
    """Open a regular file for reading; anything else is refused without being opened (stat first, then an
    O_NONBLOCK open checked again with fstat, in case the entry was swapped in between)."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise Unusable(f"{_kind(mode)}, not a file: skipped")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
        os.close(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unusable(f"{_kind(info.st_mode)}, not a file: skipped")
        raise Unusable(f"{info.st_size} bytes, more than the {limit} expected: refused")
    return os.fdopen(fd, "rb")


def copy(read: Callable[[int], bytes], target: BinaryIO, limit: int, should_stop: StopCheck = None) -> int:
    """Copy until EOF; more than `limit` bytes is refused, a stop request raises Interrupted."""
    total = 0
    while chunk := read(CHUNK):
        total += len(chunk)
        if total > limit:
            raise Unusable(f"more than the {limit} bytes expected: refused")
        target.write(chunk)
        if should_stop is not None and should_stop():
            raise Interrupted("interrupted during a download: nothing was kept")
    return total


def fetch(location: str, target: BinaryIO, *, limit: int, should_stop: StopCheck = None) -> None:
    """A mirror file or a URL into `target`."""
    if "://" not in location:
        with open_regular(location, limit) as source:
            copy(source.read, target, limit, should_stop)
        return
    _download(location, target, limit, should_stop)


class _Transfer:
    """One HTTP(S) download in a worker thread; `abort` shuts its socket down from another thread."""

    def __init__(self, url: str, target: BinaryIO, limit: int):
        import threading

        self.url, self.target, self.limit = url, target, limit
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._aborted = False

    def run(self) -> None:
        import urllib.request  # only on a download: http, email and ssl cost every run ~16 ms to import

        try:
            request = urllib.request.Request(self.url, headers={"User-Agent": "edgenet"})
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as response:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > self.limit:
                    raise Unusable(f"{declared} bytes, more than the {self.limit} expected: refused")
                with self._lock:
                    if self._aborted:
                        return
                    self._fd = response.fileno()
                try:
                    copy(getattr(response, "read1", response.read), self.target, self.limit)
                finally:
                    with self._lock:  # before the socket is closed and its number reused
                        self._fd = None
        except BaseException as exc:  # handed to the waiting thread
            self.error = exc

    def abort(self) -> bool:
        """Stop the transfer; True when it was copying (its socket is shut down), False when it has not got
        its response yet (it will return as soon as it does, without writing)."""
        import socket

        with self._lock:
            self._aborted = True
            if self._fd is None:
                return False
            with contextlib.suppress(OSError):
                duplicate = socket.socket(fileno=os.dup(self._fd))
                try:
                    duplicate.shutdown(socket.SHUT_RDWR)  # wakes the worker's recv at once
                finally:
                    duplicate.close()
            return True


def _download(url: str, target: BinaryIO, limit: int, should_stop: StopCheck) -> None:
    import threading

    transfer = _Transfer(url, target, limit)
    worker = threading.Thread(target=transfer.run, name="edgenet-download", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(STOP_POLL_S)
        if worker.is_alive() and should_stop is not None and should_stop():
            if transfer.abort():
                worker.join(1.0)  # its recv returns at once: let it finish its last write
            raise Interrupted(f"interrupted while downloading {url}: nothing was kept")
    if transfer.error is not None:
        raise transfer.error


def extract_member(
    archive: Path, member: str, target: BinaryIO, *, limit: int, should_stop: StopCheck = None
) -> None:
    """The file named `member` (at any depth) of a tar archive (gzip, bzip2, xz or plain), its declared size
    checked against `limit` before a byte of it is written."""
    import tarfile
    import zlib

    try:
        with open_regular(archive) as raw:
            try:
                tar = tarfile.open(fileobj=raw, mode="r:*")  # noqa: SIM115 - closed by the with below
            except tarfile.ReadError:
                raise Unusable(f"{archive.name} is not a tar archive (gzip, bzip2, xz or plain)") from None
            with tar:
                for info in tar:
                    if not (info.isfile() and os.path.basename(info.name) == member):
                        continue
                    if info.size > limit:
                        raise Unusable(
                            f"{member} in {archive.name} is {info.size} bytes, more than the {limit} "
                            "expected: refused"
                        )
                    copy(tar.extractfile(info).read, target, limit, should_stop)
                    return
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise Unusable(f"cannot read the archive {archive.name}: {one_line(exc)}") from None
    raise Unusable(f"the archive {archive.name} has no member {member}")
