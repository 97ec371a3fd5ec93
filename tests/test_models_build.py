"""`edgenet models build`: a zoo model with no upstream file built here (scripts/build_models.py in the
TensorFlow environment .venv-build), registered as a local build, then used with no mirror at all; and the
`models list|info|pull` reports that tell where each zoo model is."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_PYTHON = ROOT / ".venv-build" / "bin" / "python"
SLOT = "mobilenetv4_conv_small_224_int8_random.tflite"  # the catalog's file name: where the build goes
NO_MIRROR = {"EDGENET_MODEL_MIRROR": ""}

# The real entry point (edgenet.cli.main) with `models build` registered as the lead wires it into
# edgenet/cli/__init__.py; once it is wired there, the `if` below does nothing.
CLI = "from edgenet.entry import main; main()"  # the console script's own entry


def _env(home: Path, **more: str) -> dict:
    env = dict(os.environ, EDGENET_HOME=str(home), KERAS_HOME=str(home / "keras"), **NO_MIRROR)
    env.update(more)
    return env


def build_cli(*args: str, home: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLI, "models", "build", *args],
        capture_output=True,
        text=True,
        env=_env(home, **env),
        timeout=timeout,
        cwd=str(ROOT),
    )


def _require_build_venv() -> None:
    if not BUILD_PYTHON.exists():
        pytest.fail(f"{BUILD_PYTHON.parent.parent} is missing: create it with make build-venv", pytrace=False)


@pytest.fixture(scope="module")
def built_home(tmp_path_factory, images) -> tuple[Path, dict, subprocess.CompletedProcess]:
    """A fresh EDGENET_HOME, no mirror: `models build v4-conv-small --size 96` once for the module."""
    _require_build_venv()
    home = tmp_path_factory.mktemp("built-home")
    done = build_cli(
        "v4-conv-small", "--size", "96", "--samples", "24", "--images", str(images), "-f", "json", home=home
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return home, json.loads(done.stdout), done


def test_build_registers_a_local_build_with_its_provenance(built_home, images):
    home, record, done = built_home
    path = home / "models" / SLOT
    data = path.read_bytes()
    assert record["path"] == str(path)
    assert (record["sha256"], record["size"]) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (record["name"], record["input"], record["classes"]) == ("v4-conv-small", 96, 1000)
    assert (record["weights"], record["latency_only"]) == ("random", True)
    assert re.fullmatch(r"2\.\d+\.\d+.*", record["tensorflow"])
    assert record["arguments"][:3] == ["v4-conv-small", "--size", "96"] and str(images) in record["arguments"]
    registry = json.loads((home / "models" / "local-builds.json").read_text())
    assert registry["builds"][SLOT] == {k: v for k, v in record.items() if k != "path"}
    # the script's progress reaches the user, TensorFlow's chatter only the log
    assert "v4-conv-small: 3,774,024 trainable parameters" in done.stderr
    assert (
        "latency only" in done.stderr and "Traceback" not in done.stderr and "TensorSpec" not in done.stderr
    )
    assert "TensorSpec" in (home / "build-logs" / "v4-conv-small.log").read_text()
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".pull-")]


def test_bench_and_classify_use_the_local_build_with_no_mirror(built_home, cli, images):
    home, record, _ = built_home
    env = {"EDGENET_HOME": str(home), **NO_MIRROR}
    bench = cli("bench", "--model", "v4-conv-small", "--threads", "1", "--runs", "5", "-f", "json", env=env)
    assert bench.returncode == 0, bench.stderr
    (row,) = json.loads(bench.stdout)
    assert (row["model"], row["latency_only"], row["input"]) == ("v4-conv-small", True, "random uint8 96x96")
    assert "random weights (latency only)" in bench.stderr
    run = cli("classify", str(images / "cat.bmp"), "-m", "v4-conv-small", "-f", "jsonl", env=env)
    assert run.returncode == 0, run.stderr
    (result,) = [json.loads(line) for line in run.stdout.splitlines()]
    assert result["model"] == "v4-conv-small" and result["latency_only"] is True


def test_info_list_and_verify_know_the_local_build(built_home, cli):
    home, record, _ = built_home
    env = {"EDGENET_HOME": str(home), **NO_MIRROR}
    info = json.loads(cli("models", "info", "v4-conv-small", "-f", "json", env=env).stdout)
    assert info["present"] is True and info["input"] == [96, 96, 3] and info["latency_only"] is True
    assert info["input_tensor"]["shape"] == [1, 96, 96, 3]
    assert info["local_build"]["sha256"] == record["sha256"]
    rows = {row["name"]: row for row in json.loads(cli("models", "list", "-f", "json", env=env).stdout)}
    assert rows["v4-conv-small"]["where"] == "local build" and rows["v4-conv-small"]["size"] == record["size"]
    assert rows["v4-conv-medium"]["where"] is None
    assert rows["v4-conv-medium"]["get"] == "edgenet models build v4-conv-medium"
    verify = cli("models", "verify", "-f", "table", env=env)
    assert verify.returncode == 0 and f"ok   v4-conv-small: {SLOT} (local build)" in verify.stderr


def test_a_tampered_local_build_is_refused_in_one_line(built_home, cli, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(built_home[0], home)
    path = home / "models" / SLOT
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    env = {"EDGENET_HOME": str(home), **NO_MIRROR}
    run = cli("bench", "--model", "v4-conv-small", "--threads", "1", env=env)
    assert run.returncode == 3 and run.stdout == ""
    assert run.stderr.count("\n") == 1 and "is damaged" in run.stderr
    assert "edgenet models build v4-conv-small" in run.stderr
    verify = cli("models", "verify", "v4-conv-small", "-f", "table", env=env)
    assert verify.returncode == 3 and "its local build has" in verify.stderr


def test_the_mirror_copy_still_counts_and_replaces_the_local_build(built_home, cli, tmp_path, mirror):
    home = tmp_path / "home"
    shutil.copytree(built_home[0], home)
    env = {"EDGENET_HOME": str(home), "EDGENET_MODEL_MIRROR": str(mirror)}
    kept = json.loads(cli("models", "pull", "v4-conv-small", "-f", "json", env=env).stdout)
    assert kept[0]["from"] == "local build"  # an intact local build is not replaced behind the user's back
    pulled = cli("models", "pull", "v4-conv-small", "--force", "-f", "json", env=env)
    assert pulled.returncode == 0, pulled.stderr
    (row,) = json.loads(pulled.stdout)
    assert row["from"] == "mirror" and row["location"].startswith(str(mirror))
    assert (home / "models" / SLOT).read_bytes() == next(mirror.rglob(SLOT)).read_bytes()
    assert json.loads((home / "models" / "local-builds.json").read_text())["builds"] == {}
    info = json.loads(cli("models", "info", "v4-conv-small", "-f", "json", env=env).stdout)
    assert info["input"] == [224, 224, 3] and "local_build" not in info


def test_a_build_stopped_by_sigterm_registers_nothing(tmp_path, images):
    _require_build_venv()
    home = tmp_path / "home"
    child = subprocess.Popen(
        [sys.executable, "-c", CLI, "models", "build", "v4-conv-small", "--size", "64"]
        + ["--samples", "8", "--images", str(images)],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(home),
        cwd=str(ROOT),
    )
    seen = []
    for line in child.stderr:  # wait until the script really runs (TensorFlow imported, model built)
        seen.append(line)
        if line.startswith("v4-conv-small:"):
            break
    child.send_signal(signal.SIGTERM)
    rest = child.stderr.read()
    assert child.wait(timeout=60) == 130, "".join(seen) + rest
    assert rest.splitlines()[-1].startswith("edgenet: error: interrupted") and "Traceback" not in rest
    assert "nothing was registered" in rest
    models = home / "models"
    assert list(models.iterdir()) == []  # no registry, no file, no scratch folder
    deadline = time.monotonic() + 10
    while _processes_mentioning(str(models)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_mentioning(str(models))  # the TensorFlow child was ended too


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


# -- refusals that need no TensorFlow -------------------------------------------------------------------


def test_build_refusals_are_one_line_with_what_to_do(tmp_path):
    published = build_cli("v2", home=tmp_path, timeout=60)
    assert published.returncode == 2 and "edgenet models pull v2" in published.stderr
    assert "v4-conv-small" in published.stderr  # says what models build makes
    size = build_cli("v4-conv-small", "--size", "100", home=tmp_path, timeout=60)
    assert size.returncode == 2 and "--size must be a multiple of 32" in size.stderr
    weights = build_cli("v4-hybrid-medium", "--weights", "imagenet", home=tmp_path, timeout=60)
    assert weights.returncode == 2 and "--weights random" in weights.stderr
    missing = build_cli(
        "v4-conv-small", home=tmp_path, timeout=60, EDGENET_BUILD_PYTHON="/nonexistent/python"
    )
    assert missing.returncode == 3 and "build-venv" in missing.stderr
    for done in (published, size, weights, missing):
        assert done.stderr.count("\n") == 1 and done.stdout == "" and "Traceback" not in done.stderr
    assert not (tmp_path / "models" / "local-builds.json").exists()


def test_a_missing_build_environment_says_exactly_what_to_run(tmp_path, monkeypatch):
    from edgenet import builds
    from edgenet.errors import ModelError

    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "build_models.py", checkout / "scripts")
    monkeypatch.setattr(builds, "PROJECT", checkout)
    monkeypatch.setattr(builds, "SCRIPT", checkout / "scripts" / "build_models.py")
    monkeypatch.delenv(builds.BUILD_PYTHON_ENV, raising=False)
    with pytest.raises(ModelError) as caught:
        builds.build_python()
    assert f"run `make -C {checkout} build-venv`" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.setattr(builds, "SCRIPT", tmp_path / "nowhere" / "build_models.py")
    with pytest.raises(ModelError, match="source checkout"):
        builds.build_script()


# -- list, info and pull reports -------------------------------------------------------------------------


def _pty_run(args: list[str], env: dict, columns: int = 80) -> tuple[int, str]:
    """The real console script on a pseudo-terminal `columns` wide, as in an SSH window."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    full_env = dict(os.environ, COLUMNS=str(columns), TERM="xterm", **env)
    child = subprocess.Popen(
        [sys.executable, "-m", "edgenet", *args], stdin=slave, stdout=slave, stderr=slave, env=full_env
    )
    os.close(slave)
    output = bytearray()
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode(errors="replace")).replace("\r", "")
    return child.wait(timeout=60), text


def test_models_list_in_80_columns_shows_whole_names_and_where(tmp_path, mirror, model_file):
    from edgenet import zoo

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    shutil.copy(model_file("mobilenet_v1_0.25_128_quant.tflite"), home / "models")
    code, text = _pty_run(
        ["models", "list"], {"EDGENET_HOME": str(home), "EDGENET_MODEL_MIRROR": str(mirror)}
    )
    assert code == 0, text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in text
    first_cells = {line.split()[0]: line.split() for line in lines if line.strip()}
    for name in zoo.catalog():
        assert name in first_cells, f"{name} not shown whole:\n{text}"
    assert first_cells["v1-0.25-128"][1] == "cache"  # in the cache
    assert first_cells["v1-0.5-160"][1] == "mirror"  # only in the mirror folder
    assert first_cells["v1"][1:3] == ["no", "4.3"]  # neither; its size from the catalog's hint
    assert "?" not in [cells[2] for cells in first_cells.values() if len(cells) > 2]


def test_models_info_of_an_absent_model_shows_the_catalog_entry(cli, tmp_path):
    env = {"EDGENET_HOME": str(tmp_path / "home"), "EDGENET_MODEL_MIRROR": "http://127.0.0.1:9/"}
    run = cli("models", "info", "v1", "-f", "table", env=env)
    assert run.returncode == 0, run.stderr
    assert "mobilenet_v1_1.0_224_quant.tflite" in run.stdout and "present: False" in run.stdout
    assert run.stderr.count("\n") == 1 and "edgenet models pull v1" in run.stderr
    info = json.loads(cli("models", "info", "v4-conv-medium", "-f", "json", env=env).stdout)
    assert (info["present"], info["where"]) == (False, None)
    assert info["get"] == "edgenet models build v4-conv-medium" and info["size"] == 10644720
    assert not (tmp_path / "home" / "models").exists()  # nothing was fetched to describe it


def test_models_pull_json_says_what_came_from_where(cli, tmp_path, mirror):
    env = {"EDGENET_HOME": str(tmp_path / "home")}
    first = cli("models", "pull", "v1-0.25-128", "v2", "-f", "json", env=env)
    assert first.returncode == 0, first.stderr
    rows = json.loads(first.stdout)
    assert [(r["name"], r["from"]) for r in rows] == [("v1-0.25-128", "mirror"), ("v2", "mirror")]
    for row in rows:
        assert (
            Path(row["location"]).is_relative_to(mirror) and Path(row["path"]).stat().st_size == row["bytes"]
        )
    again = json.loads(cli("models", "pull", "v2", "-f", "json", env=env).stdout)
    assert again[0]["from"] == "cache" and again[0]["path"] == rows[1]["path"]
