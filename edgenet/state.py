"""Unattended runs: a lock so overlapping cron runs do not collide, and the record of images already done.

The state is SQLite in WAL mode: each image's row is committed right after its record has been written and
flushed, in a transaction of its own, so a kill -9 at any instant loses no result and redoes at most the
images in flight (whose records may then appear twice). SQLite rather than an append-only log: atomic commits
and indexed look-ups for folders of any size come with the standard library, and there is no compaction to
get right. An image is "seen" by (path, size, mtime) of the file as it was read: a file changed since, or
still being copied when it was read, counts as new, and an error record is retried up to MAX_TRIES times.
An image is marked in progress before its file is opened: one that was being decoded when POISON_STRIKES
runs died (an out-of-memory kill) is skipped with an error record instead of stopping every later run.
A state file that is not a sound edgenet state is moved aside (with a warning) and a new one started.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
import threading
import time

from edgenet.errors import DeviceError, UsageError, one_line


class AlreadyRunning(Exception):
    """Another edgenet holds the lock."""


LOCK_POLL_S = 0.2  # --wait: how often a held lock is tried again


class RunLock:
    """flock on `<path>.lock`; released by the kernel when the process dies, however it dies."""

    def __init__(
        self, path: str, *, wait: bool = False, device: bool = False, should_stop=None, waiting=None
    ):
        self.path = path
        self._fd: int | None = None
        self._wait = wait
        self._device = device  # lock an existing file or device node (a camera) as it is: no pid written
        self._should_stop = should_stop or (lambda: False)  # a SIGTERM while waiting ends the wait (130)
        self._waiting = waiting  # called once, with the holder's pid, when --wait starts waiting

    def __enter__(self) -> RunLock:
        try:
            if self._device:
                self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
            else:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(
                f"cannot open the lock file {self.path}: {exc.strerror}; check that its folder exists and is "
                "writable"
            ) from None
        while True:  # polled, not a blocking flock: Python retries that through signals, so it never ends
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if self._wait and not self._should_stop():
                    if self._waiting is not None:
                        self._waiting(_read_pid(self._fd) if not self._device else "")
                        self._waiting = None
                    time.sleep(LOCK_POLL_S)
                    continue
                holder = "" if self._device else _read_pid(self._fd)
                os.close(self._fd)
                self._fd = None
                if self._wait:
                    from edgenet.errors import Interrupted

                    raise Interrupted(f"stopped while waiting for {self.path}") from None
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


def camera_lock(spec, wait: bool = False, should_stop=None) -> RunLock | None:
    """The lock that keeps two edgenet processes off one camera: flock on its device node (or file);
    picamera2 cameras get a lock file in the temporary folder; network streams none."""
    import tempfile

    if spec.kind == "picamera2":
        return RunLock(
            os.path.join(tempfile.gettempdir(), f"edgenet-picamera2-{spec.device}.lock"),
            wait=wait,
            should_stop=should_stop,
        )
    path = f"/dev/video{spec.device}" if isinstance(spec.device, int) else str(spec.device)
    if "://" in path or not os.path.exists(path):
        return None
    return RunLock(path, wait=wait, device=True, should_stop=should_stop)


def key_now(path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file as it is now, or None when it cannot be stat'ed."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return (info.st_size, info.st_mtime_ns)


def _name(path) -> bytes:
    """The key a path is stored under: its absolute form as bytes, so any file name round-trips (a name
    that is not UTF-8 arrives from os.listdir as str with surrogate escapes)."""
    return os.fsencode(os.path.abspath(os.fsdecode(path)))


MAX_TRIES = 3  # error records for one unchanged file before it is left alone
POISON_STRIKES = 2  # runs an image may stop while being decoded before it is skipped
POISONED_ERROR = (
    f"this image stopped {POISON_STRIKES} runs while being decoded (out of memory?); skipped until the "
    "file changes: check its size, or give --max-pixels a lower cap"
)
SCHEMA_VERSION = 2
_SCHEMA = """CREATE TABLE IF NOT EXISTS images (
    path BLOB PRIMARY KEY,
    size INTEGER, mtime_ns INTEGER,
    error TEXT,
    tries INTEGER NOT NULL DEFAULT 0,
    done_at REAL,
    started_at REAL,
    decoding INTEGER NOT NULL DEFAULT 0,
    begun_size INTEGER, begun_mtime_ns INTEGER,
    strikes INTEGER NOT NULL DEFAULT 0,
    source BLOB
)"""
_COLUMNS = [
    "path",
    "size",
    "mtime_ns",
    "error",
    "tries",
    "done_at",
    "started_at",
    "decoding",
    "begun_size",
    "begun_mtime_ns",
    "strikes",
    "source",
]
_V1_COLUMNS = ["path", "size", "mtime_ns", "done_at"]
# what the first format's table showed, for scripts that read it (names that are not UTF-8 excepted)
_SEEN_VIEW = (
    "CREATE VIEW IF NOT EXISTS seen AS SELECT CAST(path AS TEXT) AS path, size, mtime_ns, done_at "
    "FROM images WHERE done_at IS NOT NULL"
)


class _Broken(Exception):
    """The file is not a usable state database: it is moved aside and a new one is started."""


def state_files(path: str) -> list[str]:
    """The files a state at `path` is made of: the database, its lock, SQLite's write-ahead log and
    shared memory, and its rollback journal."""
    return [path, path + ".lock", path + "-wal", path + "-shm", path + "-journal"]


def check_state_path(path: str) -> None:
    """A --state that names a file of other data (records, a photo: the options swapped) is refused, not
    moved aside as a broken state. A state's file starts with SQLite's header, or zeros where a power cut
    tore its first page."""
    if os.path.exists(path) and not os.path.isfile(path):  # /dev/null, a folder: SQLite says "I/O error"
        raise UsageError(f"--state {path} is not a regular file: give a file name for the state")
    try:
        with open(path, "rb") as handle:
            head = handle.read(16)
    except OSError:
        return  # missing (a new state) or unreadable: opening it says so
    if head and head != b"SQLite format 3\x00" and head.strip(b"\x00"):
        raise UsageError(
            f"--state {path} holds other data, not an edgenet state: name the state's own file (a new name "
            "starts a new state)"
        )


class SeenState:
    """Which images have a record already, which were being read when a run died, and which to skip.

    Rows: path (bytes), the (size, mtime_ns) of the file as read for its last record, that record's error and
    how many error records in a row it got for that key, whether it is in progress (begun, and still being
    decoded) and how many runs died while it was being decoded (strikes). Thread-safe: the decode worker
    calls begin()/decoded(), the record writer mark_done().
    """

    def __init__(self, path: str, *, timeout: float = 30.0):
        self.path = path
        self.warnings: list[str] = []
        self._timeout = timeout
        self._lock = threading.Lock()
        check_state_path(path)
        try:
            self._db = self._open()
        except _Broken as why:
            aside = self._move_aside()
            self.warnings.append(
                f"the state file {path} was unusable ({why}): moved it to {aside} and started a new one; "
                "images recorded before will be classified again"
            )
            self._db = self._open()
        self._interrupted, self._poisoned = self._recover()

    # -- opening -------------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        with _translated(self.path, self._timeout):
            db = sqlite3.connect(
                self.path, isolation_level=None, timeout=self._timeout, check_same_thread=False
            )
            try:
                self._check(db)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")  # durable against a killed process, fast on SD cards
            except BaseException:
                db.close()
                raise
        return db

    def _check(self, db: sqlite3.Connection) -> None:
        """quick_check, then our schema (created, migrated from version 1, or refused as foreign)."""
        try:
            verdict = [row[0] for row in db.execute("PRAGMA quick_check")]
            if verdict != ["ok"]:
                raise _Broken(f"integrity check: {verdict[0][:120]}")
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            tables = {name for name in tables if not name.startswith("sqlite_")}
            if tables == {"images"} and _columns(db, "images") == _COLUMNS:
                return
            if tables - {"seen"}:
                raise _Broken(f"not an edgenet state: it has tables {', '.join(sorted(tables))}")
            if "seen" in tables and _columns(db, "seen") != _V1_COLUMNS:
                raise _Broken("its `seen` table is not edgenet's")
        except sqlite3.DatabaseError as exc:
            if _kind(exc) in ("corrupt", "notadb"):
                raise _Broken(one_line(exc, 120)) from None
            raise
        db.execute("BEGIN IMMEDIATE")
        db.execute(_SCHEMA)
        if "seen" in tables:  # edgenet's first state format: every row was an image done
            db.execute(
                "INSERT INTO images (path, size, mtime_ns, done_at) "
                "SELECT CAST(path AS BLOB), size, mtime_ns, done_at FROM seen"
            )
            db.execute("DROP TABLE seen")
        db.execute(_SEEN_VIEW)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        db.execute("COMMIT")

    def _move_aside(self) -> str:
        aside = f"{self.path}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
        number = 1
        while os.path.lexists(aside):  # never over an earlier one
            aside, number = f"{self.path}.broken-{time.strftime('%Y%m%d-%H%M%S')}-{number}", number + 1
        with _translated(self.path, self._timeout):
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(self.path + suffix):
                    os.replace(self.path + suffix, aside + suffix)
        return aside

    def _recover(self) -> tuple[list[str], list[str]]:
        """Images left in progress by a run that died: redone; the one it died decoding gets a strike."""
        with self._guard():
            rows = self._db.execute(
                "SELECT coalesce(source, path), decoding, strikes FROM images WHERE started_at IS NOT NULL"
            ).fetchall()
            if not rows:
                return [], []
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE images SET strikes = strikes + 1 WHERE started_at IS NOT NULL AND decoding"
            )
            self._db.execute("UPDATE images SET started_at = NULL, decoding = 0 WHERE started_at IS NOT NULL")
            self._db.execute("COMMIT")
        interrupted = [os.fsdecode(row[0]) for row in rows]
        poisoned = [os.fsdecode(row[0]) for row in rows if row[1] and row[2] + 1 >= POISON_STRIKES]
        return interrupted, poisoned

    # -- the run -------------------------------------------------------------------------------------
    def interrupted(self) -> list[str]:
        """Images a previous run left in progress (found at open; named as that run named them): they are
        classified again."""
        return list(self._interrupted)

    def poisoned(self) -> list[str]:
        """Images that stopped POISON_STRIKES runs while being decoded (found at open): is_new() is False for
        them. Write an error record for each (error POISONED_ERROR) and mark_done() it with that error."""
        return list(self._poisoned)

    def is_new(self, path: str) -> bool:
        """True for an image with no record yet, one changed since (size or mtime), an error record with fewer
        than MAX_TRIES tries, or one a run left in progress; False for a poisoned image that is unchanged."""
        now = key_now(path)
        if now is None:
            return True  # it gets its error record
        with self._guard():
            row = self._db.execute(
                "SELECT size, mtime_ns, error, tries, done_at, begun_size, begun_mtime_ns, strikes "
                "FROM images WHERE path = ?",
                (_name(path),),
            ).fetchone()
        if row is None:
            return True
        size, mtime_ns, error, tries, done_at, begun_size, begun_mtime_ns, strikes = row
        if strikes >= POISON_STRIKES and (begun_size, begun_mtime_ns) == now:
            return False
        if done_at is None or (size, mtime_ns) != now:
            return True
        return error is not None and tries < MAX_TRIES

    def begin(self, path: str) -> None:
        """Mark an image in progress and being decoded, committed, before its file is opened."""
        now = key_now(path) or (None, None)
        with self._guard():
            self._db.execute(
                "INSERT INTO images (path, source, started_at, decoding, begun_size, begun_mtime_ns) "
                "VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (path) DO UPDATE SET source = excluded.source, "
                "started_at = excluded.started_at, "
                "decoding = 1, strikes = CASE WHEN begun_size IS excluded.begun_size AND begun_mtime_ns IS "
                "excluded.begun_mtime_ns THEN strikes ELSE 0 END, begun_size = excluded.begun_size, "
                "begun_mtime_ns = excluded.begun_mtime_ns",
                (_name(path), os.fsencode(path), time.time(), *now),
            )

    def decoded(self, path: str) -> None:
        """The image's decode is over (whatever its outcome): a death from now on is not its fault."""
        with self._guard():
            self._db.execute("UPDATE images SET decoding = 0 WHERE path = ?", (_name(path),))

    def mark_done(self, path: str, file_key: tuple[int, int] | None = None, error: str | None = None) -> None:
        """The image's record (a result, or an error record when `error`) is written: committed on its own.

        `file_key`: (size, mtime_ns) of the file as it was read (Frame.file_key); None: as it is now. Error
        records of one unchanged file are counted: after MAX_TRIES it is no longer new."""
        key = file_key if file_key is not None else key_now(path)
        size, mtime_ns = key if key is not None else (None, None)
        with self._guard():
            self._db.execute(
                "INSERT INTO images (path, size, mtime_ns, error, tries, done_at) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (path) DO UPDATE SET tries = CASE WHEN excluded.error IS NULL THEN 0 "
                "WHEN error IS NOT NULL AND size IS excluded.size AND mtime_ns IS excluded.mtime_ns "
                "THEN tries + 1 ELSE 1 END, size = excluded.size, mtime_ns = excluded.mtime_ns, "
                "error = excluded.error, done_at = excluded.done_at, started_at = NULL, decoding = 0, "
                f"strikes = CASE WHEN strikes >= {POISON_STRIKES} THEN strikes ELSE 0 END",
                (_name(path), size, mtime_ns, error, 0 if error is None else 1, time.time()),
            )

    def count(self) -> int:
        """Images with a record."""
        with self._guard():
            return self._db.execute("SELECT COUNT(*) FROM images WHERE done_at IS NOT NULL").fetchone()[0]

    def close(self) -> None:
        """A clean end: images still in progress (read ahead, not recorded) were not what stopped the run."""
        with self._lock:
            try:
                self._db.execute(
                    "UPDATE images SET started_at = NULL, decoding = 0 WHERE started_at IS NOT NULL"
                )
            except sqlite3.Error:
                pass  # the next open recovers them (at worst one strike)
            finally:
                self._db.close()

    @contextlib.contextmanager
    def _guard(self):
        with self._lock, _translated(self.path, self._timeout):
            yield


def _columns(db: sqlite3.Connection, table: str) -> list[str]:
    return [row[1] for row in db.execute(f"PRAGMA table_info({table})")]


def _kind(exc: sqlite3.Error) -> str:
    """busy, full, corrupt, notadb, readonly, cantopen, ioerr or other: from the result code (Python 3.11+)
    or, before, from SQLite's fixed messages."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    for kind, code, words in (
        ("busy", "SQLITE_BUSY", "database is locked"),
        ("busy", "SQLITE_LOCKED", "database table is locked"),
        ("full", "SQLITE_FULL", "database or disk is full"),
        ("corrupt", "SQLITE_CORRUPT", "malformed"),
        ("notadb", "SQLITE_NOTADB", "file is not a database"),
        ("readonly", "SQLITE_READONLY", "readonly database"),
        ("cantopen", "SQLITE_CANTOPEN", "unable to open database file"),
        ("ioerr", "SQLITE_IOERR", "disk i/o error"),
    ):
        if name.startswith(code) or words in text:
            return kind
    return "other"


@contextlib.contextmanager
def _translated(path: str, timeout: float):
    """SQLite's and the file system's failures as one-line edgenet errors with their exit codes."""
    try:
        yield
    except sqlite3.Error as exc:
        kind = _kind(exc)
        if kind == "busy":
            raise UsageError(
                f"the state file {path} is locked by another program (waited {timeout:g} s): close it (a "
                "sqlite3 shell? a backup?) and run again, or give another --state path"
            ) from None
        if kind == "full":
            raise DeviceError(f"the disk holding the state file {path} is full: free some space") from None
        if kind in ("readonly", "cantopen"):
            raise UsageError(
                f"cannot write the state file {path} ({one_line(exc, 80)}): check that its folder exists and "
                "is writable, or give another --state path"
            ) from None
        if kind == "ioerr":
            raise DeviceError(
                f"I/O error on the state file {path} ({one_line(exc, 80)}): a failing disk or SD card?"
            ) from None
        raise UsageError(
            f"cannot use {path} as a state file ({one_line(exc, 120)}); give another --state path"
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DeviceError(f"the disk holding the state file {path} is full: free some space") from None
        raise UsageError(f"cannot use {path} as a state file: {exc.strerror or exc}") from None
