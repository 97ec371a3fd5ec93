"""A bounded on-disk queue of MQTT messages (SQLite): what the broker has not acknowledged survives a broker
outage, a crash and the end of the run, and the next run that publishes to the same broker sends it.

One file per broker (`<host>_<port>.sqlite` in the outbox folder), shared by every process that publishes to
that broker. Each message belongs to the process that stored it (its `owner` token), so two runs at once do
not send each other's messages; messages of a process that ended or died (no heartbeat for OWNER_STALE_S)
are claimed by the next one. Past the bound (messages or bytes), the oldest are dropped and counted.
Used from one thread (the publisher's sender thread) after it is opened.
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

MAX_MESSAGES = 100_000
MAX_MB = 64
HEARTBEAT_S = 10.0
OWNER_STALE_S = 30.0
COLUMNS = ["id", "topic", "payload", "owner"]
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
    "payload BLOB NOT NULL, owner TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS messages_by_owner ON messages (owner, id)",
    "CREATE TABLE IF NOT EXISTS owners (token TEXT PRIMARY KEY, seen REAL NOT NULL)",
)


def _alive(token: str) -> bool:
    """Whether the process that owns `token` (PID-random) still runs on this machine."""
    pid = token.split("-")[0]
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


class Outbox:
    def __init__(self, path: Path | None, *, max_messages: int = MAX_MESSAGES, max_mb: float = MAX_MB):
        """`path` None keeps the messages in memory (for this run only). Opening problems never raise: a
        corrupt or foreign file is moved aside and a new one made, an unusable folder falls back to memory;
        `warnings` says what happened."""
        import sqlite3

        self.max_messages = max(1, int(max_messages))
        self.max_bytes = max(1, int(max_mb * 1e6))
        self.token = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.warnings: list[str] = []
        self.path = path
        self.db = self._open(path)
        self.count, self.bytes = 0, 0
        try:
            self.heartbeat()  # registered before it stores anything: no other process claims its messages
        except sqlite3.Error as exc:  # locked for long by another process, disk full: the sender retries
            self.warnings.append(f"the MQTT outbox {path}: {exc}")

    def _open(self, path: Path | None):
        import sqlite3

        if path is None:
            return self._connect(":memory:")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return self._connect(str(path))
        except sqlite3.DatabaseError as exc:  # not a database, or not ours (corrupt, foreign tables)
            aside = path.with_name(f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(path, aside)
                self.warnings.append(f"the MQTT outbox {path} was unusable ({exc}); moved to {aside.name}")
                return self._connect(str(path))
            except (OSError, sqlite3.Error) as again:
                exc = again
            problem = exc
        except OSError as exc:
            problem = exc
        self.warnings.append(
            f"cannot use the MQTT outbox {path} ({getattr(problem, 'strerror', None) or problem}): messages "
            "wait in memory for this run only"
        )
        self.path = None
        return self._connect(":memory:")

    @staticmethod
    def _connect(where: str):
        import sqlite3

        db = sqlite3.connect(where, timeout=5.0, check_same_thread=False)
        try:
            if where != ":memory:":
                db.execute(
                    "PRAGMA journal_mode=WAL"
                )  # appends without fsync; a crash keeps what was committed
                db.execute("PRAGMA synchronous=NORMAL")
            for statement in SCHEMA:
                db.execute(statement)
            columns = [row[1] for row in db.execute("PRAGMA table_info(messages)")]
            if columns != COLUMNS:
                raise sqlite3.DatabaseError(f"a messages table with columns {columns}")
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _totals(self) -> tuple[int, int]:
        row = self.db.execute(
            "SELECT count(*), total(length(topic) + length(payload)) FROM messages"
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- used by the sender thread ------------------------------------------------------------------

    def add(self, messages: list[tuple[str, bytes]]) -> int:
        """Store messages (topic, payload) as this process's; returns how many old ones were dropped."""
        with self.db:
            self.db.executemany(
                "INSERT INTO messages (topic, payload, owner) VALUES (?, ?, ?)",
                [(topic, payload, self.token) for topic, payload in messages],
            )
        self.count += len(messages)
        self.bytes += sum(len(topic) + len(payload) for topic, payload in messages)
        return self._trim()

    def _trim(self) -> int:
        """Drop the oldest messages past the bound. The running count is an estimate (other processes and
        this one's writer add too): it is checked against the file before anything is dropped."""
        if self.count <= self.max_messages and self.bytes <= self.max_bytes:
            return 0
        self.count, self.bytes = self._totals()
        dropped = 0
        while self.count > self.max_messages or self.bytes > self.max_bytes:
            rows = self.db.execute(
                "SELECT id, length(topic) + length(payload) FROM messages ORDER BY id LIMIT 500"
            ).fetchall()
            if not rows:
                self.count, self.bytes = 0, 0
                break
            doomed = []
            for rowid, size in rows:
                if self.count - len(doomed) <= self.max_messages and self.bytes <= self.max_bytes:
                    break
                doomed.append(rowid)
                self.bytes -= size
            self._delete(doomed)
            self.count -= len(doomed)
            dropped += len(doomed)
        return dropped

    def next_batch(self, limit: int, exclude: set[int]) -> list[tuple[int, str, bytes]]:
        """The oldest messages of this process not in `exclude` (those already handed to the broker)."""
        rows = self.db.execute(
            "SELECT id, topic, payload FROM messages WHERE owner = ? ORDER BY id LIMIT ?",
            (self.token, limit + len(exclude)),
        ).fetchall()
        return [row for row in rows if row[0] not in exclude][:limit]

    def remove(self, ids: list[int]) -> None:
        """Acknowledged by the broker."""
        self.count -= self._delete(ids)
        if self.count <= 0:
            self.count, self.bytes = self._totals()

    def _delete(self, ids: list[int]) -> int:
        removed = 0
        with self.db:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                cursor = self.db.execute(
                    f"DELETE FROM messages WHERE id IN ({','.join('?' * len(part))})",  # noqa: S608
                    part,
                )
                removed += cursor.rowcount
        return removed

    def owned(self) -> int:
        return self.db.execute("SELECT count(*) FROM messages WHERE owner = ?", (self.token,)).fetchone()[0]

    def heartbeat(self) -> None:
        """Say this process is alive and take over the messages of processes that are not: ended, killed
        (their process is gone), or silent for OWNER_STALE_S (another PID namespace, a hung process)."""
        now = time.time()
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO owners VALUES (?, ?)", (self.token, now))
            self.db.execute("DELETE FROM owners WHERE seen < ?", (now - OWNER_STALE_S,))
            others = [
                row[0] for row in self.db.execute("SELECT token FROM owners WHERE token != ?", (self.token,))
            ]
            gone = [(token,) for token in others if not _alive(token)]
            self.db.executemany("DELETE FROM owners WHERE token = ?", gone)
            self.db.execute(
                "UPDATE messages SET owner = ? WHERE owner NOT IN (SELECT token FROM owners)", (self.token,)
            )
        self.count, self.bytes = self._totals()

    def close(self) -> None:
        """This process is done: what it leaves is for the next run to claim at once."""
        try:
            with self.db:
                self.db.execute("DELETE FROM owners WHERE token = ?", (self.token,))
            self.count, self.bytes = self._totals()
        finally:
            self.db.close()

    def note_added(self, messages: int, size: int) -> int:
        """Count what this process's writer (`OutboxWriter`) stored; returns how many old ones were dropped"""
        self.count += messages
        self.bytes += size
        return self._trim()


class OutboxWriter:
    """The run's own connection to the outbox: a message is on disk (committed, WAL) before `publish`
    returns, so a kill -9 right after loses nothing. It never waits long: when another process holds the
    file for more than BUSY_S, or the disk fails, `store` raises sqlite3.Error and the caller keeps the
    message in memory for the sender thread. Checkpoints (the fsyncs) are left to the sender's connection."""

    BUSY_S = 0.05

    def __init__(self, outbox: Outbox):
        import sqlite3

        self.token = outbox.token
        self.db = sqlite3.connect(str(outbox.path), timeout=self.BUSY_S, check_same_thread=False)
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA wal_autocheckpoint=0")

    def store(self, topic: str, payload: bytes) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO messages (topic, payload, owner) VALUES (?, ?, ?)", (topic, payload, self.token)
            )

    def close(self) -> None:
        self.db.close()
