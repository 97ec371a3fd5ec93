"""scripts/build_models.py: build a tiny MobileNetV4-Conv-Small (96x96) with the build environment
(.venv-build, TensorFlow 2.21: `make build-venv`) and check the result with edgenet's own runtime."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "build_models.py"
BUILD_PYTHON = ROOT / ".venv-build" / "bin" / "python"
SIZE = 96
V4_CONV_SMALL_TIMM_PARAMS = 3_774_024  # timm's mobilenetv4_conv_small at 1000 classes (any resolution)
REFERENCE = "built/mobilenetv4_conv_small_224_int8_random.tflite"


def tensorflow_has_a_wheel_here() -> bool:
    """Whether pip finds a TensorFlow wheel for this machine and Python (from the index metadata, without
    downloading it): none for 32-bit ARM, nor for a Python newer than TensorFlow supports."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--only-binary=:all:", "--quiet"]
        + ["-r", str(ROOT / "requirements-build.txt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0 and "No matching distribution" not in done.stderr:
        reason = done.stderr.strip()[-300:]
        pytest.fail(f"pip could not check for a TensorFlow wheel: {reason}", pytrace=False)
    return done.returncode == 0


def run_build(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    if not BUILD_PYTHON.exists():
        if not tensorflow_has_a_wheel_here():
            pytest.skip(
                f"TensorFlow has no wheel for {platform.machine()} / Python {platform.python_version()}: "
                "the model build needs it (make build-venv skips it too)"
            )
        pytest.fail(
            f"the build environment {BUILD_PYTHON.parent.parent} is missing: create it with make build-venv "
            "(python3 -m venv .venv-build && .venv-build/bin/pip install -r requirements-build.txt)",
            pytrace=False,
        )
    env = dict(os.environ, KERAS_HOME=str(home), HOME=str(home))  # Keras writes its config in KERAS_HOME
    return subprocess.run(
        [str(BUILD_PYTHON), str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=str(ROOT),
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory, images):
    """Build once for the module: (records printed on stdout, output folder, completed process)."""
    out = tmp_path_factory.mktemp("built")
    done = run_build(
        "v4-conv-small",
        "--size",
        str(SIZE),
        "--samples",
        "24",
        "--out",
        str(out),
        "--images",
        str(images),
        home=tmp_path_factory.mktemp("keras-home"),
    )
    assert done.returncode == 0, f"build failed:\n{done.stderr[-3000:]}"
    records = [json.loads(line) for line in done.stdout.splitlines()]  # stdout holds JSON records only
    return records, out, done


@pytest.fixture(scope="module")
def built_file(build) -> Path:
    records, out, _ = build
    assert len(records) == 1
    return Path(records[0]["file"])


def test_record_names_the_file_and_counts_timm_parameters(build, built_file):
    (record,), out, done = build
    assert record["model"] == "v4-conv-small"
    assert record["params"] == V4_CONV_SMALL_TIMM_PARAMS
    assert f"{V4_CONV_SMALL_TIMM_PARAMS:,} trainable parameters" in done.stderr
    # random weights: named *_int8_random and marked latency only, in the record and in what the user reads
    assert built_file == out / f"mobilenetv4_conv_small_{SIZE}_int8_random.tflite"
    assert (record["weights"], record["latency_only"]) == ("random", True)
    assert "latency only" in done.stderr
    assert [p.name for p in out.iterdir()] == [built_file.name]  # writes nothing else in --out
    data = built_file.read_bytes()
    assert (record["size"], record["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
    # what edgenet models build records as the build's provenance
    assert record["tensorflow"].startswith("2.") and record["keras"].startswith("3.")
    assert record["weights_source"].startswith("random (seed 0), BatchNorm statistics re-estimated on 24")


def test_edgenet_runs_it_with_uint8_io_and_xnnpack_takes_it_whole(built_file, images):
    from conftest import engine_for

    from edgenet.imaging import prepare, read_image
    from edgenet.tasks.classification import output_spec, scores_from_output

    engine = engine_for(built_file)
    output = output_spec(engine)
    assert (engine.input.height, engine.input.width, engine.input.channels) == (SIZE, SIZE, 3)
    assert engine.input.dtype == "uint8"
    assert (output.classes, output.dtype, output.probabilities) == (1000, "uint8", True)
    assert engine.interpreter.get_input_details()[0]["shape"].tolist() == [1, SIZE, SIZE, 3]
    # a V4-Conv graph is one XNNPACK partition
    assert engine.placement.kind == "xnnpack" and engine.partitions == 1

    outputs = [
        engine.run(prepare(read_image(str(images / name)), engine.input))[0].reshape(-1)
        for name in ("parrot.jpg", "cat.bmp")
    ]
    for raw in outputs:
        assert raw.dtype == np.uint8 and raw.shape == (1000,) and raw.any()
        # random weights spread the softmax thin: 1000 small probabilities, each rounded to 1/256 steps
        assert 0.2 < float(scores_from_output(raw, output).sum()) < 1.5
    assert not np.array_equal(*outputs)  # the photo moves the output: the graph really computes


def test_graph_is_full_integer_builtin_and_matches_the_reference_op_list(built_file, model_file):
    from conftest import engine_for

    engine = engine_for(built_file, "cpu")  # no delegate: every op of the graph is visible
    assert engine.file.custom_ops == ()
    interpreter = engine.interpreter
    ops = interpreter._get_ops_details()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    model_input = int(interpreter.get_input_details()[0]["index"])
    model_output = int(interpreter.get_output_details()[0]["index"])

    def dtype(index):
        return np.dtype(tensors[index]["dtype"]).name

    for op in ops:
        used = [int(i) for i in [*op["inputs"], *op["outputs"]] if i >= 0]
        dtypes = {dtype(i) for i in used}
        assert dtypes <= {"int8", "uint8", "int32"}, (op["op_name"], dtypes)
        if op["op_name"] != "QUANTIZE":  # int8 inside, uint8 only at the edges
            assert "uint8" not in dtypes, op["op_name"]
    quantize = [op for op in ops if op["op_name"] == "QUANTIZE"]
    assert len(quantize) == 2
    assert {model_input, model_output} == {int(quantize[0]["inputs"][0]), int(quantize[1]["outputs"][0])}

    reference = engine_for(model_file(REFERENCE), "cpu")
    assert Counter(engine.op_counts()) == Counter(reference.op_counts())


def test_bad_arguments_are_usage_errors_without_traceback(tmp_path):
    done = run_build("v4-conv-small", "--size", "100", "--out", str(tmp_path), home=tmp_path, timeout=60)
    assert done.returncode == 2
    assert "--size must be a multiple of 32" in done.stderr and "Traceback" not in done.stderr
    done = run_build("v5", "--out", str(tmp_path), home=tmp_path, timeout=60)
    assert done.returncode == 2 and "invalid choice: 'v5'" in done.stderr
    assert list(tmp_path.iterdir()) == []
