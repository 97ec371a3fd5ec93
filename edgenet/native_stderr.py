"""What C libraries print on file descriptor 2 during a call, captured so it can be judged, not leaked.

libjpeg reports corrupt data ("Corrupt JPEG data: premature end of data segment") only as a line on stderr,
and the TFLite runtime prints INFO lines there. Redirecting fd 2 is process-wide, so one capture at a time
(a lock), and whatever other threads print meanwhile is handed back by the caller (`passed_on`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

_LOCK = threading.Lock()
_SINK: dict[int, int] = {}  # pid -> the descriptor captures go to (one file per process, reused)
_KEEP = 65536  # bytes of a capture that are read back: enough to judge it, bounded whatever a library spews


class Captured:
    """The text written on fd 2 while the `with` block ran (set when it ends)."""

    text: str = ""


def _sink() -> int:
    fd = _SINK.get(os.getpid())
    if fd is None:
        if hasattr(os, "memfd_create"):  # Linux: a file in memory, nothing on disk
            fd = os.memfd_create("edgenet-stderr", os.MFD_CLOEXEC)
        else:
            import tempfile

            fd, name = tempfile.mkstemp(prefix="edgenet-stderr-")
            os.unlink(name)
        _SINK.clear()  # a forked child must not share its parent's file offset
        _SINK[os.getpid()] = fd
    return fd


@contextlib.contextmanager
def captured_stderr():
    """`with captured_stderr() as out:` ... `out.text`. Nothing captured reaches the terminal."""
    out = Captured()
    with _LOCK:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        sink = _sink()
        os.ftruncate(sink, 0)
        os.lseek(sink, 0, os.SEEK_SET)  # shared with fd 2 once dup2'ed: writes start at 0 again
        try:
            saved: int | None = os.dup(2)
        except OSError:  # fd 2 closed (a daemon): capture anyway, and close it again after
            saved = None
        os.dup2(sink, 2)
        try:
            yield out
        finally:
            if saved is None:
                os.close(2)
            else:
                os.dup2(saved, 2)
                os.close(saved)
            out.text = os.pread(sink, _KEEP, 0).decode(errors="replace")


def pass_on(text: str) -> None:
    """Write lines that were captured but are not ours to judge back to stderr."""
    if text:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.write(text)
            sys.stderr.flush()
