import multiprocessing
import os
import threading

import pytest

from edgenet.state import AlreadyRunning, RunLock, SeenState


def test_seen_state_by_path_size_and_mtime(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"one")
    state = SeenState(str(tmp_path / "state.db"))
    assert state.is_new(str(image))
    state.mark_done(str(image))
    assert not state.is_new(str(image))
    image.write_bytes(b"changed!")  # another size
    assert state.is_new(str(image))
    state.mark_done(str(image))
    os.utime(image, ns=(1, 1))  # same size, other mtime
    assert state.is_new(str(image))
    assert state.count() == 1
    state.close()
    assert SeenState(str(tmp_path / "state.db")).is_new(str(tmp_path / "missing.jpg"))


def test_state_survives_reopen_and_is_wal(tmp_path):
    image = tmp_path / "b.jpg"
    image.write_bytes(b"x")
    first = SeenState(str(tmp_path / "s.db"))
    first.mark_done(str(image))
    # no close(): a killed process never closes; the row must be there for the next run
    second = SeenState(str(tmp_path / "s.db"))
    assert not second.is_new(str(image))
    assert second._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _hold_lock(path, ready, release):
    with RunLock(path):
        ready.set()
        release.wait(10)


def test_second_lock_says_already_running_and_dies_with_the_holder(tmp_path):
    path = str(tmp_path / "state.db.lock")
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    assert ready.wait(10)
    with pytest.raises(AlreadyRunning, match=f"pid {holder.pid}"), RunLock(path):
        pass
    holder.kill()  # SIGKILL: the kernel drops the flock
    holder.join(10)
    with RunLock(path):
        pass


def test_wait_blocks_until_the_holder_is_done(tmp_path):
    path = str(tmp_path / "x.lock")
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(path, ready, release))
    holder.start()
    assert ready.wait(10)
    with pytest.raises(AlreadyRunning):
        RunLock(path).__enter__()
    threading.Timer(0.3, release.set).start()
    with RunLock(path, wait=True):  # blocks until the holder lets go, instead of giving up
        holder.join(10)
        assert holder.exitcode == 0
