"""--watch: a folder watched as a service: what is there first, then each new image once it has finished
arriving, with the same state and lock as cron runs; SIGTERM ends it with whole records."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time

from conftest import ROOT


def read_record(process, timeout: float = 60.0) -> dict:
    """The next record the run writes (the test fails if none comes within `timeout`: a hang, not a speed)."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "no record came"
    line = process.stdout.readline()
    assert line.endswith("\n"), (line, process.stderr.read() if process.poll() is not None else "")
    return json.loads(line)


def test_a_watched_folder_takes_the_backlog_then_each_new_image_once(images, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_first.bmp").write_bytes((images / "cat.bmp").read_bytes())
    state = tmp_path / "inbox.state"
    command = [sys.executable, "-m", "edgenet", "classify", str(inbox), "--watch", "--settle", "3"]
    command += ["--state", str(state), "-m", "v1-0.25-128", "-f", "jsonl"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, bufsize=1
    )
    try:
        first = read_record(process)
        assert os.path.basename(first["source"]) == "a_first.bmp" and "top_k" in first
        # a photo arriving in two writes: it is read whole once it stops changing (--settle 3)
        data = (images / "parrot.jpg").read_bytes()
        with open(inbox / "b_arriving.jpg", "wb") as handle:
            handle.write(data[: len(data) // 2])
            handle.flush()
            time.sleep(0.3)
            handle.write(data[len(data) // 2 :])
        (inbox / "notes.txt").write_text("not an image: no record")
        arrived = read_record(process)
        assert os.path.basename(arrived["source"]) == "b_arriving.jpg"
        assert arrived["top_k"][0]["label"] == "macaw"  # whole, not a truncated JPEG
        # a cron run on the same state meanwhile does nothing: the watch holds the lock
        cron = subprocess.run(
            [sys.executable, "-m", "edgenet", "classify", str(inbox), "--state", str(state), "-f", "jsonl"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert cron.returncode == 0 and cron.stdout == "" and "already running" in cron.stderr
        process.send_signal(signal.SIGTERM)
        rest, errors = process.stdout.read(), process.stderr.read()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "Traceback" not in errors, errors
    assert rest == ""  # nothing else was classified: not the text file, not an image twice
    again = subprocess.run(
        [sys.executable, "-m", "edgenet", "classify", str(inbox), "--state", str(state), "-f", "jsonl"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout == "" and "nothing new" in again.stderr


def test_watch_takes_folders_only(cli, images):
    run = cli("classify", str(images / "cat.bmp"), "--watch")
    assert run.returncode == 2 and "--watch takes folders" in run.stderr and "Traceback" not in run.stderr


def test_a_replaced_folder_is_watched_again_with_sources_named_as_given(images, tmp_path):
    """The inbox is moved away and made again (a sync tool, `rm -rf` and mkdir): images arriving in the new
    one get records, named from the folder as the user gave it (relative), as the backlog's are; a file
    that stays empty gets its error record, as in a run without --watch."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a_first.bmp").write_bytes((images / "cat.bmp").read_bytes())
    command = [sys.executable, "-m", "edgenet", "classify", "inbox", "--watch", "--settle", "0.5"]
    command += ["-m", "v1-0.25-128", "-f", "jsonl"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, bufsize=1
    )
    try:
        first = read_record(process)
        assert first["source"] == os.path.join("inbox", "a_first.bmp")
        (inbox / "b_second.jpg").write_bytes((images / "parrot.jpg").read_bytes())
        second = read_record(process)
        assert second["source"] == os.path.join("inbox", "b_second.jpg")  # relative, as the backlog
        inbox.rename(tmp_path / "old")
        inbox.mkdir()
        (inbox / "c_after.jpg").write_bytes((images / "parrot.jpg").read_bytes())
        (tmp_path / "old" / "d_old.jpg").write_bytes((images / "parrot.jpg").read_bytes())
        third = read_record(process)
        assert third["source"] == os.path.join("inbox", "c_after.jpg") and third["top_k"]
        (inbox / "e_empty.jpg").write_bytes(b"")
        empty = read_record(process)
        assert empty["source"] == os.path.join("inbox", "e_empty.jpg") and "error" in empty
        process.send_signal(signal.SIGTERM)
        rest, errors = process.stdout.read(), process.stderr.read()
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130 and "Traceback" not in errors, errors
    assert rest == ""  # the moved-away folder is not watched any more
