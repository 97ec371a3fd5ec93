"""Files that appear whole or not at all: written in full (and fsynced) under no name or a hidden temporary
name in the same folder, then given their name in one step. A kill -9 at any instant leaves either the
complete file or nothing under its name.

On Linux the data goes to an unnamed file (O_TMPFILE) that is linked in when complete: a process killed
before that leaves nothing behind at all. Elsewhere (or on file systems without O_TMPFILE: vfat, some network
mounts) a hidden `.edgenet-*.tmp` file is renamed over the name; one left by a kill is removed by
`remove_leftovers`.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

TEMP_PREFIX, TEMP_SUFFIX = ".edgenet-", ".tmp"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _link_unnamed(folder: str, path: str, data: bytes) -> bool:
    """O_TMPFILE + link; False when the file system (or the platform) cannot, or when `path` exists."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd") or os.path.lexists(path):
        return False
    try:
        fd = os.open(folder or ".", flag | os.O_WRONLY, 0o644)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOENT):
            return False  # no O_TMPFILE here: the named temporary file does it
        raise
    try:
        _write_all(fd, data)
        os.fsync(fd)
        # linkat(AT_SYMLINK_FOLLOW) on the /proc link: the complete file gets its name (CPython calls
        # plain link(), which would link the /proc symlink itself, unless a dir_fd is given)
        folder_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link(f"/proc/self/fd/{fd}", os.path.basename(path), dst_dir_fd=folder_fd, follow_symlinks=True)
        except FileExistsError:
            return False
        finally:
            os.close(folder_fd)
        return True
    finally:
        os.close(fd)


def write_atomic(path: str, data: bytes) -> None:
    """`data` under `path`, whole or not at all; an existing file is replaced. Raises OSError."""
    folder = os.path.dirname(path)
    if _link_unnamed(folder, path, data):
        return
    fd, temporary = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=TEMP_SUFFIX, dir=folder or ".")
    try:
        _write_all(fd, data)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove_leftovers(folder: str) -> int:
    """Delete the temporary files a killed run left in `folder` (named temporaries only); how many."""
    removed = 0
    with contextlib.suppress(OSError):
        for name in os.listdir(folder):
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(folder, name))
                    removed += 1
    return removed
