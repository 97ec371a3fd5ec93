"""Issue 12 end to end: what an adversarial pass found, each case through the real console script. The leaf
modules' own tests (state, imaging, labels, inputs, zoo, MQTT) cover the rest of each fix."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import zlib

import pytest
from conftest import ROOT


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def one_line_error(run, code: int, *words: str) -> None:
    assert run.returncode == code, run.stderr
    lines = [line for line in run.stderr.splitlines() if line.startswith("edgenet: error:")]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def test_file_names_that_are_not_utf8_round_trip_through_records_and_state(cli, images, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    raw = os.fsencode(inbox) + b"/0\xff.jpg"
    with open(raw, "wb") as handle:
        handle.write((images / "parrot.jpg").read_bytes())
    (inbox / "b.bmp").write_bytes((images / "cat.bmp").read_bytes())
    state, output = tmp_path / "s.state", tmp_path / "out.jsonl"
    args = [
        "classify",
        str(inbox),
        "-m",
        "v1-0.25-128",
        "-f",
        "jsonl",
        "--state",
        str(state),
        "-o",
        str(output),
    ]
    first = cli(*args)
    assert first.returncode == 0, first.stderr
    data = output.read_bytes()
    data.decode("utf-8")  # valid UTF-8, whatever the file names
    found = [json.loads(line) for line in data.decode().splitlines()]
    assert sorted(os.fsencode(r["source"]) for r in found) == sorted([raw, os.fsencode(inbox / "b.bmp")])
    assert "macaw" in {r["top_k"][0]["label"] for r in found}
    again = cli(*args)  # the state knows both names: nothing new, nothing written
    assert again.returncode == 0 and output.read_bytes() == data
    stdout = subprocess.run(
        [sys.executable, "-m", "edgenet", "classify", str(inbox), "-m", "v1-0.25-128", "-f", "jsonl", "-q"],
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert stdout.returncode == 0 and len(records(stdout.stdout.decode("utf-8"))) == 2


def png_bomb(path, side: int = 30000) -> None:
    """A real PNG of side x side grey pixels compressing to a few MB: each row a filter byte and zeros."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])  # 8-bit grey
    packer = zlib.compressobj(9)
    row = bytes(side + 1)
    body = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


def test_a_decompression_bomb_is_an_error_record_not_5_gb(cli, images, tmp_path):
    bomb = tmp_path / "bomb.png"
    png_bomb(bomb)
    run = cli("classify", str(bomb), str(images / "cat.bmp"), "-m", "v1-0.25-128", "-f", "jsonl")
    assert run.returncode == 1 and "Traceback" not in run.stderr
    bad, good = records(run.stdout)
    assert "30000x30000" in bad["error"] and "--max-pixels" in bad["error"] and "top_k" in good
    raised = cli("classify", str(bomb), "-m", "v1-0.25-128", "-f", "jsonl", "--max-pixels", "100")
    assert "--max-pixels" in records(raised.stdout)[0]["error"]  # a lower cap refuses it too, from the header
    usage = cli("classify", str(bomb), "--max-pixels", "-5")
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: chmod 000 cannot make it unreadable")
def test_an_unreadable_subfolder_is_an_error_record(cli, images, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "locked").mkdir(parents=True)
    (inbox / "a.bmp").write_bytes((images / "cat.bmp").read_bytes())
    os.chmod(inbox / "locked", 0)
    try:
        run = cli("classify", str(inbox), "-m", "v1-0.25-128", "-f", "jsonl")
    finally:
        os.chmod(inbox / "locked", 0o755)
    assert run.returncode == 1
    found = {os.path.basename(r["source"]): r for r in records(run.stdout)}
    assert "cannot list folder" in found["locked"]["error"] and "top_k" in found["a.bmp"]


def test_a_glob_matching_nothing_is_an_empty_inbox(cli, tmp_path):
    run = cli("classify", str(tmp_path / "inbox" / "*.jpg"), "-m", "v1-0.25-128", "-f", "jsonl")
    assert run.returncode == 0 and run.stdout == "" and "matched no file" in run.stderr


def test_a_full_disk_keeps_only_whole_records_and_exits_4(cli, images, tmp_path):
    """RLIMIT_FSIZE makes the output file 'full' at 3000 bytes, for this process alone: the record that did
    not fit is cut back, the run stops with exit 4 and one line, and the next run appends whole lines."""
    output = tmp_path / "out.jsonl"
    assert cli("models", "pull", "v2").returncode == 0  # the model in the cache first: it is bigger than that

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (3000, 3000))

    command = [
        sys.executable,
        "-m",
        "edgenet",
        "classify",
        str(images),
        "-m",
        "v2",
        "-f",
        "jsonl",
        "-o",
        str(output),
    ]
    full = subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=120, preexec_fn=small_disk
    )
    one_line_error(full, 4, "cannot write records", str(output))
    text = output.read_text()
    assert text.endswith("\n") and 0 < len(text) <= 3000
    kept = [json.loads(line) for line in text.splitlines()]
    assert 0 < len(kept) < 12
    after = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert after.returncode == 0, after.stderr
    assert len([json.loads(line) for line in output.read_text().splitlines()]) == len(kept) + 12


def test_markup_and_escapes_in_names_and_labels_are_shown_as_text(cli, images, tmp_path):
    photo = tmp_path / "[bold]cat[red]\x1b[31m.bmp"
    photo.write_bytes((images / "cat.bmp").read_bytes())
    labels = tmp_path / "labels.txt"
    names = [f"class {i}" for i in range(1001)]
    names[286] = "[/red][bold]Egyptian cat"
    labels.write_text("\n".join(names) + "\n")
    model = next((images.parent / "models").rglob("mobilenet_v1_0.25_128_quant.tflite"))
    run = cli("classify", str(photo), "-m", str(model), "--labels", str(labels), "-f", "table")
    assert run.returncode == 0, run.stderr
    assert "[bold]cat[red]" in run.stderr and "[/red][bold]Egyptian cat" in run.stderr
    assert "\x1b" not in run.stderr and "\\x1b" in run.stderr and "MarkupError" not in run.stderr


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--threads", "1000"), "64"),
        (("--threads", "0"), "--threads"),
        (("--top-k", "0"), "--top-k"),
        (("--threshold", "2"), "--threshold"),
        (("--input-range", "-inf,inf"), "finite"),
        (("--delegate", "gpu"), "gpu"),
    ],
)
def test_bad_option_values_are_one_line_usage_errors(cli, images, args, words):
    run = cli("classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", *args)
    one_line_error(run, 2, words)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--state", "{t}/s", "-f", "table"), "use --format jsonl or csv with --state"),
        (("--state", "{t}/same", "--output", "{t}/same"), "--state and --output name the same file"),
        (("--output", "{t}/o", "--prom-textfile", "{t}/./o"), "--output and --prom-textfile name the same"),
        (("--state", "/dev/null"), "--state /dev/null is not a regular file"),
        (("--state", "{t}/s.db", "--output", "{t}/s.db.lock"), "--state and --output name the same file"),
        (("--state", "{t}/s.db", "--prom-textfile", "{t}/s.db-wal"), "--state and --prom-textfile name the"),
        (("--state", "{t}/no/such/s"), "check that its folder exists"),
    ],
)
def test_a_state_needs_records_as_they_come_and_each_file_its_own_path(cli, images, tmp_path, args, words):
    """A table is written at the end: a killed run with --state would have marked images whose records
    were never written. Two options naming one file would write records into the SQLite state."""
    args = [arg.format(t=tmp_path) for arg in args]
    run = cli("classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", *args)
    one_line_error(run, 2, words)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing created before the refusal


def test_a_state_without_a_format_writes_jsonl_even_on_a_terminal(images, tmp_path):
    """On a terminal the default is a table; with --state it is JSON lines (a table comes only at the end)."""
    import pty

    leader, follower = pty.openpty()
    args = ["classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", "-q", "--state", str(tmp_path / "s")]
    run = subprocess.run(
        [sys.executable, "-m", "edgenet", *args], stdout=follower, stderr=subprocess.PIPE, timeout=120
    )
    os.close(follower)
    shown = os.read(leader, 65536).decode()
    os.close(leader)
    assert run.returncode == 0, run.stderr
    assert json.loads(shown.strip())["source"].endswith("cat.bmp")


@pytest.mark.parametrize("closed", ["stdout", "stderr"])
def test_a_closed_stdout_or_stderr_is_no_crash(images, closed):
    """`edgenet classify ... >&-` (records have nowhere to go: one line, exit 2) and `2>&-` (the table and
    messages go nowhere: the run still works)."""
    args = ["classify", str(images / "cat.bmp"), "-m", "v1-0.25-128"]
    if closed == "stdout":
        run = subprocess.run(
            ["sh", "-c", '"$@" >&-', "sh", sys.executable, "-m", "edgenet", *args, "-f", "jsonl"],
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        one_line_error(run, 2, "the output stream is closed")
    else:
        run = subprocess.run(
            ["sh", "-c", '"$@" 2>&-', "sh", sys.executable, "-m", "edgenet", *args, "-f", "jsonl"],
            stdout=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0 and json.loads(run.stdout)["top_k"]


def test_a_fifo_given_as_a_camera_is_refused_not_waited_on(cli, tmp_path):
    """Opening a FIFO blocks until a writer comes, where no SIGTERM can end it."""
    fifo = tmp_path / "feed.avi"
    os.mkfifo(fifo)
    run = cli("classify", "--camera", str(fifo), "-m", "v1-0.25-128", "-f", "jsonl")
    one_line_error(run, 2, "a FIFO or socket cannot be opened as a camera")


def test_a_state_that_is_a_folder_is_refused_before_its_lock_is_made(cli, images, tmp_path):
    (tmp_path / "s").mkdir()
    run = cli("classify", str(images / "cat.bmp"), "-m", "v1-0.25-128", "--state", str(tmp_path / "s"))
    one_line_error(run, 2, "is not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no s.lock beside it
