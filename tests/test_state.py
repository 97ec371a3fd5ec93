import multiprocessing
import os
import sqlite3
import threading

import cv2
import numpy as np
import pytest

from edgenet.errors import DeviceError, UsageError
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


# -- file names, broken state files, locks, full disks ----------------------------------------------------


def test_file_names_that_are_not_utf8_round_trip(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"0\xff.jpg")
    with open(raw, "wb") as handle:
        handle.write(b"x")
    name = os.fsdecode(raw)  # "0\udcff.jpg", as os.listdir gives it
    state = SeenState(str(tmp_path / "s.db"))
    assert state.is_new(name)
    state.begin(name)
    second = SeenState(str(tmp_path / "s.db"))  # the first one "died" while on it
    assert second.interrupted() == [name] and os.fsencode(second.interrupted()[0]) == raw
    second.mark_done(name, (1, os.stat(raw).st_mtime_ns), None)
    assert not second.is_new(name) and second.count() == 1


def _state_with_rows(path, rows=400):
    state = SeenState(str(path))
    for index in range(rows):
        state.mark_done(f"/photos/{index:05d}-{'x' * 100}.jpg", (index, index), None)
    state.close()  # checkpointed into the main file
    return path


def _broken_states(tmp_path):
    corrupt = _state_with_rows(tmp_path / "corrupt.db")
    with open(corrupt, "r+b") as handle:  # pages 3-6 of ~13: the b-tree now points at garbage
        handle.seek(2 * 4096)
        handle.write(bytes(range(256)) * 64)
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE seen (name TEXT, when_seen INTEGER)")
    other_app = tmp_path / "other.db"
    with sqlite3.connect(other_app) as db:
        db.execute("CREATE TABLE customers (id INTEGER)")
    torn = tmp_path / "torn.db"  # a power cut tore its first page: SQLite's header gone, zeros instead
    torn.write_bytes(bytes(4096) + b"not a database at all\n" * 100)
    return [corrupt, foreign, other_app, torn]


@pytest.mark.parametrize(
    "content", [b'{"source": "a.jpg", "frame": 0}\n', b"\xff\xd8\xff\xe0 a JPEG", b"notes\n" * 100]
)
def test_a_state_path_naming_other_data_is_refused_and_left_alone(tmp_path, content):
    """--state and --output swapped, or a photo named: refused (exit 2), not moved aside as a broken state."""
    path = tmp_path / "records.jsonl"
    path.write_bytes(content)
    with pytest.raises(UsageError, match="holds other data, not an edgenet state"):
        SeenState(str(path))
    assert path.read_bytes() == content and sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_a_broken_state_is_moved_aside_with_a_warning_and_rebuilt(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    for path in _broken_states(tmp_path):
        before = path.read_bytes()
        state = SeenState(str(path))
        assert len(state.warnings) == 1, path
        warning = state.warnings[0]
        aside = sorted(tmp_path.glob(path.name + ".broken-*"))
        assert [p for p in aside if not p.name.endswith(("-wal", "-shm"))][0].read_bytes() == before
        assert warning.startswith(f"the state file {path} was unusable (") and "\n" not in warning
        assert f"moved it to {path}.broken-" in warning
        assert state.is_new(str(image))
        state.mark_done(str(image))
        assert not state.is_new(str(image))
        state.close()
        assert SeenState(str(path)).warnings == []  # the new one is sound


def test_a_state_of_the_first_format_is_migrated_not_moved_aside(tmp_path):
    image = tmp_path / "a.jpg"
    image.write_bytes(b"x")
    info = image.stat()
    path = tmp_path / "v1.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE seen (path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, "
            "done_at REAL NOT NULL)"
        )
        db.execute("INSERT INTO seen VALUES (?, ?, ?, 0)", (str(image), info.st_size, info.st_mtime_ns))
    state = SeenState(str(path))
    assert state.warnings == [] and not state.is_new(str(image)) and state.count() == 1
    assert state._db.execute("SELECT path FROM seen").fetchall() == [(str(image),)]  # still readable


def test_a_state_locked_by_another_program_is_one_clear_line(tmp_path):
    path = str(tmp_path / "s.db")
    SeenState(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a write transaction held open, e.g. by a sqlite3 shell
    holder.execute("INSERT INTO images (path) VALUES (x'00')")
    state = SeenState(path, timeout=0.2)  # reading is fine in WAL mode ...
    with pytest.raises(UsageError) as raised:
        state.begin(str(tmp_path / "a.jpg"))  # ... writing waits, then says so
    message = str(raised.value)
    assert message.startswith(f"the state file {path} is locked by another program (waited 0.2 s)")
    assert raised.value.exit_code == 2 and "\n" not in message
    holder.execute("ROLLBACK")
    state.begin(str(tmp_path / "a.jpg"))
    state.close()
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")  # now even reading waits: at open
    with pytest.raises(UsageError, match="is locked by another program"):
        SeenState(path, timeout=0.2)
    holder.close()


def test_a_full_disk_is_a_device_error(tmp_path):
    state = SeenState(str(tmp_path / "s.db"))
    pages = state._db.execute("PRAGMA page_count").fetchone()[0]
    state._db.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite reports SQLITE_FULL past this
    with pytest.raises(DeviceError) as raised:
        for index in range(1000):
            state.mark_done(f"/photos/{index:05d}-{'x' * 200}.jpg", (1, 1), None)
    assert raised.value.exit_code == 4
    assert (
        str(raised.value) == f"the disk holding the state file {tmp_path / 's.db'} is full: free some space"
    )


FILL_THE_DISK = """
import json, os, sys
from edgenet.errors import EdgenetError
from edgenet.state import SeenState
marked = 0
try:
    state = SeenState(os.path.join(sys.argv[1], "state.db"))
    while marked < 100000:
        state.mark_done(os.path.join(sys.argv[1], f"{marked:06d}-" + "x" * 200 + ".jpg"), (1, 1), None)
        marked += 1
except EdgenetError as exc:
    print(json.dumps({"marked": marked, "exit": exc.exit_code, "error": str(exc)}))
"""


def test_a_really_full_disk_is_a_device_error(tmp_path):
    import json
    import shutil
    import subprocess
    import sys

    disk = tmp_path / "disk"
    disk.mkdir()
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip(
            "no unshare -rm (user namespaces) to mount a 256 KiB tmpfs; the max_page_count test stands"
        )
    mounted = f'mount -t tmpfs -o size=256k tmpfs {disk} && exec {sys.executable} -c "$0" {disk}'
    child = subprocess.run(
        ["unshare", "-rm", "sh", "-c", mounted, FILL_THE_DISK], capture_output=True, text=True
    )
    assert child.returncode == 0 and child.stderr == "", child.stderr
    outcome = json.loads(child.stdout)
    assert outcome["marked"] > 0 and outcome["exit"] == 4
    assert outcome["error"] == f"the disk holding the state file {disk}/state.db is full: free some space"


# -- seen is decided by what was read; bounded retries -----------------------------------------------------


def test_a_file_read_while_being_copied_is_read_again_once_complete(tmp_path, images):
    from edgenet.sources import image_frames

    whole = (images / "owl.jpg").read_bytes()
    photo = tmp_path / "owl.jpg"
    photo.write_bytes(whole[: len(whole) // 2])  # the copy is half way when the run reads it
    state = SeenState(str(tmp_path / "s.db"))
    frame = next(image_frames([str(photo)]))
    assert "truncated" in frame.error
    with open(photo, "ab") as handle:  # the copy finishes before the record is marked
        handle.write(whole[len(whole) // 2 :])
    state.mark_done(frame.source, frame.file_key, frame.error)
    assert state.is_new(str(photo))  # what was read is not what is there: read again
    frame = next(image_frames([str(photo)]))
    assert frame.error is None
    state.mark_done(frame.source, frame.file_key, frame.error)
    assert not state.is_new(str(photo))


def test_error_records_are_retried_up_to_max_tries(tmp_path):
    from edgenet.state import MAX_TRIES

    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    key = (1, photo.stat().st_mtime_ns)
    state = SeenState(str(tmp_path / "s.db"))
    for attempt in range(MAX_TRIES):
        assert state.is_new(str(photo)), attempt
        state.mark_done(str(photo), key, "cannot read image: Permission denied")
    assert not state.is_new(str(photo))  # 3 error records for an unchanged file: left alone
    os.utime(photo, ns=(5, 5))
    assert state.is_new(str(photo))  # changed: tried again
    state.mark_done(str(photo), (1, 5), None)
    state.mark_done(str(photo), (1, 5), "cannot read image: Permission denied")
    assert state.is_new(str(photo))  # a new error after a result counts from 1


# -- in progress, interrupted, poison pills ---------------------------------------------------------------


def test_images_in_flight_at_a_death_are_redone_and_only_the_one_decoding_gets_a_strike(tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    path = str(tmp_path / "s.db")
    state = SeenState(path)
    state.begin(str(a))
    state.decoded(str(a))  # read, waiting for inference
    state.begin(str(b))  # being decoded when the process died
    for _death in range(3):
        state = SeenState(path)  # each open recovers once; nothing was begun in between
        assert state.poisoned() == [] and state.is_new(str(a)) and state.is_new(str(b))
    state.begin(str(b))
    state.begin(str(a))
    state.decoded(str(a))
    state.close()  # a clean end (SIGTERM): nothing in progress was to blame
    state = SeenState(path)
    assert state.interrupted() == [] and state.poisoned() == []
    strikes = dict(state._db.execute("SELECT CAST(path AS TEXT), strikes FROM images"))
    assert strikes == {str(a): 0, str(b): 1}


POISON_RUN = """
import sys
from edgenet.sources import image_frames
from edgenet.state import SeenState
state = SeenState(sys.argv[1])
paths = [path for path in sys.argv[2:] if state.is_new(path)]
frames = image_frames(paths, max_pixels=None, before_read=state.begin, after_read=state.decoded)
for frame in frames:
    print(frame.source, frame.error, flush=True)  # the record, then the state
    state.mark_done(frame.source, frame.file_key, frame.error)
"""


def _killed_while_decoding(state_path, paths, bomb):
    """One run of POISON_RUN, SIGKILLed (as the OOM killer does) once the bomb is being decoded."""
    import subprocess
    import sys
    import time

    run = subprocess.Popen([sys.executable, "-c", POISON_RUN, state_path, *paths], stdout=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not os.path.exists(state_path) and time.monotonic() < deadline:
        time.sleep(0.005)  # connecting first would create the file
    watcher = sqlite3.connect(state_path, timeout=10)
    try:
        while time.monotonic() < deadline and run.poll() is None:
            try:
                row = watcher.execute(
                    "SELECT decoding FROM images WHERE path = ?", (os.fsencode(bomb),)
                ).fetchone()
            except sqlite3.OperationalError:  # the table is not there yet
                row = None
            if row and row[0]:
                break
            time.sleep(0.005)
    finally:
        watcher.close()
        run.kill()
        out = run.communicate()[0].decode()
    assert run.returncode == -9, out  # killed, not finished: the bomb was being decoded
    return out


def test_an_image_that_killed_two_runs_while_decoding_is_skipped(tmp_path):
    from test_imaging import png_bomb

    from edgenet.state import POISONED_ERROR

    good, bomb = tmp_path / "a.jpg", tmp_path / "b.png"
    ok, encoded = cv2.imencode(".jpg", np.zeros((48, 64, 3), np.uint8))
    good.write_bytes(encoded.tobytes())
    bomb.write_bytes(png_bomb(30000, 30000))  # no pixel cap in POISON_RUN: decoding takes seconds and GBs
    state_path = str(tmp_path / "s.db")
    first = _killed_while_decoding(state_path, [str(good), str(bomb)], str(bomb))
    assert first == f"{good} None\n"  # the result before the bomb was recorded
    state = SeenState(state_path)
    assert state.interrupted() == [str(bomb)] and state.poisoned() == []  # one death may be bad luck
    assert not state.is_new(str(good)) and state.is_new(str(bomb))
    state.close()
    assert _killed_while_decoding(state_path, [str(good), str(bomb)], str(bomb)) == ""
    state = SeenState(state_path)
    assert state.poisoned() == [str(bomb)] and not state.is_new(str(bomb))
    state.mark_done(str(bomb), None, POISONED_ERROR)  # after its error record was written
    state.close()
    state = SeenState(state_path)
    assert state.poisoned() == [] and not state.is_new(str(bomb))  # reported once, skipped after
    bomb.write_bytes(encoded.tobytes())  # replaced by a sane file: tried again
    assert state.is_new(str(bomb))
    assert POISONED_ERROR.startswith(
        "this image stopped 2 runs while being decoded (out of memory?); skipped"
    )


def test_the_state_is_used_from_the_decode_thread_and_the_writer_thread(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"x")
    state = SeenState(str(tmp_path / "s.db"))
    worker = threading.Thread(target=lambda: (state.begin(str(photo)), state.decoded(str(photo))))
    worker.start()
    worker.join()
    state.mark_done(str(photo))
    assert not state.is_new(str(photo)) and state.interrupted() == []


def test_a_second_broken_state_in_the_same_second_does_not_replace_the_first(tmp_path):
    path = tmp_path / "s.db"
    for content in (b"first garbage\n", b"second garbage\n"):
        path.write_bytes(b"SQLite format 3\x00" + content * 100)  # the header, then garbage
        SeenState(str(path)).close()
    kept = sorted(
        p.read_bytes()[16:31] for p in tmp_path.glob("s.db.broken-*") if not p.name.endswith("-wal")
    )
    assert kept == [b"first garbage\nf", b"second garbage\n"]
