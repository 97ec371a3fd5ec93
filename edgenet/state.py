"""Unattended runs: a lock so overlapping cron runs do not collide, and the record of images already done.

The state is SQLite in WAL mode: each image's row is committed right after its record has been written and
flushed, in a transaction of its own, so a kill -9 at any instant loses no result and redoes at most the
image in flight (whose record may then appear twice). SQLite rather than an append-only log: atomic commits
and indexed look-ups for folders of any size come with the standard library, and there is no compaction to
get right. An image is "seen" by (path, size, mtime): a changed file counts as new.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time

from edgenet.errors import UsageError


class AlreadyRunning(Exception):
    """Another edgenet holds the lock."""


class RunLock:
    """flock on `<path>.lock`; released by the kernel when the process dies, however it dies."""

    def __init__(self, path: str, *, wait: bool = False, device: bool = False):
        self.path = path
        self._fd: int | None = None
        self._wait = wait
        self._device = device  # lock an existing file or device node (a camera) as it is: no pid written

    def __enter__(self) -> RunLock:
        try:
            if self._device:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            else:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"cannot open the lock file {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if self._wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = "" if self._device else _read_pid(self._fd)
            os.close(self._fd)
            self._fd = None
            raise AlreadyRunning(f"already running (pid {holder or '?'} holds {self.path})") from None
        if not self._device:
            os.ftruncate(self._fd, 0)
            os.write(self._fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""


def camera_lock(spec, wait: bool = False) -> RunLock | None:
    """The lock that keeps two edgenet processes off one camera: flock on its device node (or file);
    picamera2 cameras get a lock file in the temporary folder; network streams none."""
    import tempfile

    if spec.kind == "picamera2":
        return RunLock(
            os.path.join(tempfile.gettempdir(), f"edgenet-picamera2-{spec.device}.lock"), wait=wait
        )
    path = f"/dev/video{spec.device}" if isinstance(spec.device, int) else str(spec.device)
    if "://" in path or not os.path.exists(path):
        return None
    return RunLock(path, wait=wait, device=True)


def file_key(path: str) -> tuple[str, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), info.st_size, info.st_mtime_ns)


class SeenState:
    """Which images have a record already."""

    def __init__(self, path: str):
        self.path = path
        try:
            # the writer thread marks images done: one thread at a time, never two at once
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "PRAGMA synchronous=NORMAL"
            )  # durable against a killed process, fast on SD cards
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS seen (path TEXT PRIMARY KEY, size INTEGER NOT NULL, "
                "mtime_ns INTEGER NOT NULL, done_at REAL NOT NULL)"
            )
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"cannot use {path} as a state file ({exc}); give another --state path"
            ) from None

    def is_new(self, path: str) -> bool:
        key = file_key(path)
        if key is None:
            return True
        row = self._db.execute("SELECT size, mtime_ns FROM seen WHERE path = ?", (key[0],)).fetchone()
        return row is None or (row[0], row[1]) != key[1:]

    def mark_done(self, path: str) -> None:
        key = file_key(path)
        if key is None:
            return
        self._db.execute(
            "INSERT OR REPLACE INTO seen (path, size, mtime_ns, done_at) VALUES (?, ?, ?, ?)",
            (*key, time.time()),
        )

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM seen").fetchone()[0]

    def close(self) -> None:
        self._db.close()
