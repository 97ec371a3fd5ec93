"""Is a cached file the catalog's? Every byte is checked on every load, cheaply.

A bad SD card changes bytes without touching a file's size or mtime, so a stamp of those proves nothing. The
catalog's digest (sha256, or the git blob SHA-1 where only that is known upstream) is checked in full when a
file arrives and whenever there is doubt; once it holds, a record beside the file keeps the file's CRC-32
(`.NAME.crc32`: the digest it was verified against, the size, the CRC). A later load reads the whole file
again and compares its CRC-32 with the record: any corruption of the bytes shows (a CRC-32 misses a random
change with odds of 1 in 4 billion), and a mismatch sends it back to the full digest, which decides.

Why not the digest on every load: hashlib loads OpenSSL's libcrypto, which costs resident memory and
start-up on every cron run of a small classifier (docs/performance.md gives the figures), while zlib's
CRC-32 is already in memory. The record is
as trusted as the cache folder it sits in: the digest at download time, from the catalog inside the
package, is what keeps a tampered download out.
"""

from __future__ import annotations

import contextlib
import os
import zlib
from pathlib import Path

CHUNK = 1 << 20


def record_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.crc32")


def _read_record(path: Path) -> tuple[str, int, int] | None:
    try:
        digest, size, crc = record_path(path).read_text(encoding="ascii").split()
        return digest, int(size), int(crc, 16)
    except (OSError, ValueError, UnicodeDecodeError):
        return None


def _write_record(path: Path, digest: str, size: int, crc: int) -> None:
    """Atomically (a temporary file renamed); a cache that cannot be written just keeps no record."""
    record = record_path(path)
    scratch = record.with_name(f"{record.name}.{os.getpid()}.tmp")
    try:
        scratch.write_text(f"{digest} {size} {crc:08x}\n", encoding="ascii")
        os.replace(scratch, record)
    except OSError:
        with contextlib.suppress(OSError):
            scratch.unlink()


def crc32_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _digests(path: Path, kind: str, size: int) -> tuple[str, int]:
    """(the catalog's kind of digest, CRC-32) in one read."""
    import hashlib

    found = hashlib.sha256() if kind == "sha256" else hashlib.sha1(b"blob %d\0" % size)
    crc = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            found.update(chunk)
            crc = zlib.crc32(chunk, crc)
    return found.hexdigest(), crc


def check(path: Path, *, size: int | None, sha256: str | None, git_sha1: str | None, full: bool = False,
          remember: Path | None = None) -> str | None:  # fmt: skip
    """None when the file at `path` is the one the catalog describes; otherwise what differs. `full`: the
    digest itself, whatever the record says (`edgenet models verify`); `remember`: where the file lives in
    the cache (`path` itself, or the place a download goes): its record is kept when the digest holds."""
    found_size = path.stat().st_size
    if size is not None and found_size != size:
        return f"size {found_size} bytes, expected {size}"
    if sha256:
        expected, kind, what = sha256, "sha256", "sha256"
    elif git_sha1:
        expected, kind, what = git_sha1, "git_sha1", "git blob sha1"
    else:
        return None
    record = None if full or remember is None else _read_record(remember)
    if record is not None and record[:2] == (expected, found_size) and crc32_of(path) == record[2]:
        return None
    digest, crc = _digests(path, kind, found_size)
    if digest != expected:
        return f"{what} {digest[:16]}..., expected {expected[:16]}..."
    if remember is not None:
        _write_record(remember, expected, found_size, crc)
    return None
