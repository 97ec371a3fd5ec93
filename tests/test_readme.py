"""The README, followed literally: every ```sh block runs as written (in a fresh EDGENET_HOME, offline, the
mirror standing in for the network), except the blocks that say they need a board's hardware or the user's
own photos; their edgenet command lines are still checked, by asking each for its help (an unknown option or
command fails there). And the Python API example runs."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

README = ROOT / "README.md"
BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
ELSEWHERE = ("# on a board", "# with your own")  # a first line saying the block cannot run here


def blocks() -> list[str]:
    return BLOCK.findall(README.read_text())


def offline_mirror(folder: Path, mirror: Path, images: Path) -> Path:
    """The model mirror plus the three sample photos: what `edgenet samples` pulls, offline."""
    folder.mkdir()
    for root, _dirs, files in os.walk(mirror):
        for name in files:
            target = folder / name
            if not target.exists():
                target.symlink_to(Path(root) / name)
    for name in ("cat.bmp", "parrot.jpg", "grace_hopper.bmp"):
        (folder / name).symlink_to(images / name)
    return folder


@pytest.fixture
def readme_env(tmp_path, mirror, images) -> dict:
    venv_bin = Path(sys.executable).parent
    return dict(
        os.environ,
        EDGENET_HOME=str(tmp_path / "home"),
        EDGENET_MODEL_MIRROR=str(offline_mirror(tmp_path / "mirror", mirror, images)),
        PATH=f"{venv_bin}:{os.environ['PATH']}",
    )


def test_the_readme_has_blocks_of_both_kinds():
    found = blocks()
    assert len(found) >= 8
    assert any(b.startswith(ELSEWHERE) for b in found) and any(not b.startswith(ELSEWHERE) for b in found)


def quick_start() -> tuple[str, str]:
    """The install block (`make run`) and the block after it, which must then work offline."""
    found = blocks()
    number = found.index("make run\n")
    return found[number], found[number + 1]


def test_make_run_then_the_quick_start_works_offline(readme_env, tmp_path):
    """The quick start as a newcomer meets it: `make run` (the Makefile finds the mirror in ../shared by
    itself), then the next block with no mirror and no network: everything it needs was cached."""
    install, first_steps = quick_start()
    assert "edgenet samples" in first_steps
    env = {k: v for k, v in readme_env.items() if k != "EDGENET_MODEL_MIRROR"}
    done = subprocess.run(["bash", "-e", "-c", install], capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    offline = dict(env, EDGENET_MODEL_MIRROR=str(tmp_path / "no-mirror"), http_proxy="http://127.0.0.1:9")
    offline.update(https_proxy=offline["http_proxy"], HTTPS_PROXY=offline["http_proxy"])
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", first_steps],
        capture_output=True,
        text=True,
        env=offline,
        cwd=work,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert "macaw" in done.stdout and "Traceback" not in done.stderr
    assert len((work / "results.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("number", [n for n, b in enumerate(blocks()) if b not in quick_start()])
def test_every_command_block_works_as_written(number, readme_env, tmp_path):
    block = blocks()[number]
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")  # `source .venv/bin/activate`, as in the clone
    if block.startswith(ELSEWHERE):
        for line in block.splitlines():
            if line.startswith("edgenet "):
                words = shlex.split(re.split(r"\s[>|]\s", line)[0].replace("$(edgenet samples)", "samples"))
                done = subprocess.run(
                    [*words, "--help"], capture_output=True, text=True, env=readme_env, cwd=work
                )
                assert done.returncode == 0, (line, done.stderr)
        return
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        capture_output=True,
        text=True,
        env=readme_env,
        cwd=work,
        timeout=600,
    )
    assert done.returncode == 0, (block, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in done.stderr


def test_the_python_api_example_runs(readme_env, images):
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "api.py"), str(images)],
        capture_output=True,
        text=True,
        env=readme_env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "parrot.jpg: macaw" in done.stdout and "detected:" in done.stdout
