"""The second backend for real: tflite-runtime 2.14 with numpy 1.x in its own venv (`make compat-venv`)."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

COMPAT = ROOT / ".venv-tflite" / "bin" / "python"
COMPAT_PYTHON = os.environ.get("COMPAT_PYTHON", "python3.11")  # as in the Makefile


def compat(*args):
    if not COMPAT.exists():
        if shutil.which(COMPAT_PYTHON) is None:
            pytest.skip(f"tflite-runtime 2.14 needs Python <= 3.11 and {COMPAT_PYTHON} is not installed here")
        pytest.fail(
            "the tflite-runtime environment is missing: run `make compat-venv` (make test does)",
            pytrace=False,
        )
    env = dict(os.environ, EDGENET_BACKEND="tflite_runtime")
    # `-m` from the checkout: this tree's edgenet, whichever checkout the environment was installed from
    return subprocess.run(
        [str(COMPAT), "-m", "edgenet", *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
    )


def test_classify_on_tflite_runtime_agrees_with_ai_edge_litert(images, cli):
    photos = [str(images / "cat.bmp"), str(images / "parrot.jpg"), str(images / "hot_dog.jpg")]
    old = compat("classify", *photos, "-m", "v2", "-f", "jsonl", "-t", "1")
    assert old.returncode == 0, old.stderr
    assert "tflite_runtime 2.14" in old.stderr
    new = cli("classify", *photos, "-m", "v2", "-f", "jsonl", "-t", "1", "-q")
    for a, b in zip(old.stdout.splitlines(), new.stdout.splitlines(), strict=True):
        ours, theirs = json.loads(a), json.loads(b)
        assert ours["top_k"][0]["index"] == theirs["top_k"][0]["index"]
        assert abs(ours["top_k"][0]["score"] - theirs["top_k"][0]["score"]) < 0.03
        # tflite-runtime 2.14 hands these models to no delegate, and the record says so
        assert (ours["delegate"], ours["delegate_reason"]) == (
            "cpu",
            "no Edge TPU found; xnnpack took no part of this model (tflite_runtime)",
        )


def test_bench_names_the_backend(cli):
    run = compat("bench", "-m", "v1-0.25-128", "-t", "1", "--runs", "5", "--min-seconds", "0", "-f", "json")
    assert run.returncode == 0, run.stderr
    record = json.loads(run.stdout)[0]
    assert (record["backend"], record["backend_version"][:4]) == ("tflite_runtime", "2.14")


def test_a_backend_that_cannot_be_imported_is_one_line(cli, images):
    run = cli("classify", str(images / "cat.bmp"), env={"EDGENET_BACKEND": "tensorflow"})
    assert run.returncode == 4 and "Traceback" not in run.stderr
    assert "no TFLite backend could be imported" in run.stderr and "pip install" in run.stderr


def resolve(machine: str, python: str = "3.11", system_site: tuple[str, ...] = ()) -> dict[str, str]:
    """What pip on the board would install (scripts/arm64/resolve.py: a dry run against the package index)."""
    args = [sys.executable, str(ROOT / "scripts" / "arm64" / "resolve.py"), machine, "--python", python]
    args += [f"--system-site={spec}" for spec in system_site]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["environment"]["platform_machine"] == machine  # pip evaluated the board's markers
    return report["install"]


def test_32_bit_pi_os_resolves_to_tflite_runtime_and_numpy_1():
    # Pi OS bookworm armhf, Python 3.11: numpy 1.24.2 from apt (python3-numpy); PyPI has no armv7l numpy
    picked = resolve("armv7l", "3.11", ("numpy==1.24.2",))
    assert picked["tflite-runtime"].startswith("2.14.")
    assert "ai-edge-litert" not in picked and "opencv-python-headless" not in picked
    assert "numpy" not in picked  # the system's numpy 1.x is kept: tflite-runtime needs numpy < 2
    assert {"edgenet", "typer", "rich", "paho-mqtt"} <= set(picked)


def test_64_bit_pi_os_resolves_to_ai_edge_litert():
    picked = resolve("aarch64", "3.11")
    assert "ai-edge-litert" in picked and "tflite-runtime" not in picked
    assert {"numpy", "opencv-python-headless", "edgenet"} <= set(picked)


def test_32_bit_arm_on_python_3_13_installs_without_a_runtime():
    # Pi OS trixie armhf: tflite-runtime stops at Python 3.11 and ai-edge-litert has no 32-bit ARM wheel
    picked = resolve("armv7l", "3.13", ("numpy==2.2.4",))
    assert "edgenet" in picked
    assert "tflite-runtime" not in picked and "ai-edge-litert" not in picked
