"""The second backend for real: tflite-runtime 2.14 with numpy 1.x in its own venv (`make compat-venv`)."""

import json
import os
import subprocess

import pytest
from conftest import ROOT

COMPAT = ROOT / ".venv-tflite" / "bin" / "edgenet"


def compat(*args):
    if not COMPAT.exists():
        pytest.fail(
            "the tflite-runtime environment is missing: run `make compat-venv` (make test does)",
            pytrace=False,
        )
    env = dict(os.environ, EDGENET_BACKEND="tflite_runtime")
    return subprocess.run(
        [str(COMPAT), *args], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT
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
