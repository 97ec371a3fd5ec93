"""The real runtime on the real models of the mirror."""

import cv2
import numpy as np
import pytest
from conftest import engine_for

from edgenet.errors import DeviceError, ModelError
from edgenet.imaging import prepare
from edgenet.labels import imagenet_labels
from edgenet.model import open_model
from edgenet.runtime import Engine, load_backend
from edgenet.tasks.classification import output_spec, predictions
from edgenet.tensors import inspect_model_file


def classify_file(engine, path, resize="crop", k=3):
    raw = engine.run(prepare(cv2.imread(str(path)), engine.input, resize))[0]
    spec = output_spec(engine)
    return predictions(raw, spec, list(imagenet_labels())[-spec.classes :], k)


def test_backend_is_ai_edge_litert_by_default():
    backend = load_backend()
    assert backend.name == "ai_edge_litert" and backend.version[0].isdigit()


@pytest.mark.parametrize(
    ("file", "dtype", "scale", "zero_point", "value_range", "source"),
    [
        ("mobilenet_v1_0.25_128_quant.tflite", "uint8", 0.0078125, 128, (-1.0, 0.9921875), "quantization"),
        (
            "mobilenet_edgetpu_0.75_224_post_training_quant.tflite",
            "uint8",
            0.011570743,
            123,
            None,
            "quantization",
        ),
        ("mobilenet_v2_1_0_quant.tflite", "uint8", 1 / 255, 0, (0.0, 1.0), "quantization"),
        ("mobilenet_v1_0.25_224_1_default_1.tflite", "float32", 0.0, 0, (-1.0, 1.0), "default"),
        ("Mobilenet_v3_small_quant.tflite", "float32", 0.0, 0, (0.0, 1.0), "quantize-op"),
    ],
)
def test_input_spec_comes_from_the_tensor(model_file, file, dtype, scale, zero_point, value_range, source):
    engine = engine_for(model_file(file))
    spec = engine.input
    assert (spec.dtype, spec.zero_point, spec.range_source) == (dtype, zero_point, source)
    assert spec.scale == pytest.approx(scale, rel=1e-5)
    if value_range:
        assert spec.value_range == pytest.approx(value_range, abs=1e-3)


def test_output_spec_background_and_logits(model_file):
    assert output_spec(Engine(model_file("mobilenet_v2_1_0_quant.tflite"), threads=1)).classes == 1000
    v2 = output_spec(Engine(model_file("tf2_mobilenet_v2_1.0_224_ptq.tflite"), threads=1))
    assert (v2.classes, v2.probabilities) == (1001, True)  # SOFTMAX then QUANTIZE
    quirks = output_spec(engine_for(model_file("Mobilenet_v3_small_quant.tflite")))
    assert (quirks.dtype, quirks.probabilities) == ("float32", False)  # CONV -> RESHAPE -> DEQUANTIZE: logits


def test_v2_uses_xnnpack_in_one_partition(model_file):
    engine = engine_for(model_file("tf2_mobilenet_v2_1.0_224_ptq.tflite"))
    assert engine.placement.kind == "xnnpack" and engine.placement.reason is None and engine.partitions == 1
    assert engine.op_counts()["CONV_2D"] == 36


def test_xnnpack_failure_falls_back_to_builtin_kernels(model_file, images):
    engine = engine_for(model_file("Mobilenet_v3_small_quant.tflite"))
    assert (engine.placement.kind, engine.placement.reason) == ("cpu", "xnnpack failed to prepare this model")
    assert engine.partitions == 0
    top = classify_file(engine, images / "cat.bmp")
    # int8 logits saturate at 7.40 for tabby, tiger cat and Egyptian cat: a three-way tie at the top
    tied = {p.label for p in top if p.score == top[0].score}
    assert tied == {"tabby, tabby cat", "tiger cat", "Egyptian cat"}, top


def test_xnnpack_asked_for_explicitly_fails_as_a_device_problem(model_file):
    with pytest.raises(DeviceError, match="XNNPACK failed"):
        engine_for(model_file("Mobilenet_v3_small_quant.tflite"), "xnnpack")


def test_cpu_delegate_means_builtin_kernels(model_file):
    engine = engine_for(model_file("mobilenet_v1_0.25_128_quant.tflite"), "cpu")
    assert engine.placement.kind == "cpu" and engine.partitions == 0


@pytest.mark.parametrize(
    ("file", "error", "match"),
    [
        ("model_invoking_error.tflite", ModelError, "custom op 'fake-op-double'"),
        ("v3-small_224_1.0_uint8_vela.tflite", ModelError, "Ethos-U"),
        ("mobilenet_v1_0.25_128_quant_edgetpu.tflite", DeviceError, "Edge TPU"),
        ("ssd_mobilenet_v1_1_default_1.tflite", ModelError, "not a classifier; use edgenet detect"),
    ],
)
def test_models_that_cannot_run_are_refused_plainly(model_file, file, error, match):
    from edgenet.tasks.classification import ClassifyOptions

    with pytest.raises(error, match=match):
        open_model(str(model_file(file)), ClassifyOptions(), threads=1)


def test_an_edgetpu_file_needs_its_delegate_even_in_a_bare_engine(model_file):
    with pytest.raises(DeviceError, match="compiled for the Edge TPU"):
        Engine(model_file("mobilenet_v1_0.25_128_quant_edgetpu.tflite"), threads=1)


def test_edgetpu_files_are_detected_before_loading(model_file):
    assert inspect_model_file(model_file("mobilenet_v1_0.5_160_quant_edgetpu.tflite")).needs_edgetpu
    assert not inspect_model_file(model_file("mobilenet_v1_0.5_160_quant.tflite")).needs_edgetpu


def test_not_a_flatbuffer_and_truncated(tmp_path, model_file):
    text = tmp_path / "notes.tflite"
    text.write_text("hello, I am not a model")
    with pytest.raises(ModelError, match="not a TFLite model"):
        Engine(text)
    data = model_file("mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        Engine(cut)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="not a TFLite model"):
        Engine(empty)


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("tf2_mobilenet_v2_1.0_224_ptq.tflite", "Egyptian cat"),
        ("mobilenet_v1_0.25_224_1_default_1.tflite", "Egyptian cat"),
        ("mobilenet_v2_1_0_quant.tflite", "Egyptian cat"),
        ("v3-small_224_1.0_uint8.tflite", "Egyptian cat"),
        ("mobilenet_edgetpu_0.75_224_post_training_quant.tflite", "Egyptian cat"),
    ],
)
def test_real_models_see_the_cat(model_file, images, file, expected):
    engine = engine_for(model_file(file))
    top = classify_file(engine, images / "cat.bmp")
    assert top[0].label == expected, top


def test_one_interpreter_is_reused_and_results_are_repeatable(model_file, images):
    engine = Engine(model_file("mobilenet_v1_0.5_160_quant.tflite"), threads=1)
    interpreter = engine.interpreter
    tensor = prepare(cv2.imread(str(images / "parrot.jpg")), engine.input)
    first = engine.run(tensor)[0].copy()
    for _ in range(3):
        np.testing.assert_array_equal(engine.run(tensor)[0], first)
    assert engine.interpreter is interpreter


def test_builtin_fallback_runs_one_thread_unless_told(model_file, monkeypatch):
    """On a board with more cores the default would be several threads: pathological on builtin kernels."""
    from edgenet import runtime

    monkeypatch.setattr(runtime, "default_threads", lambda pipeline=False, folder=False: 3)
    quirks = str(model_file("Mobilenet_v3_small_quant.tflite"))
    opened = open_model(quirks)
    assert opened.engine.threads == 1 and opened.placement.kind == "cpu"
    assert any("using 1 thread" in w for w in opened.warnings)
    told = open_model(quirks, threads=2)
    assert told.engine.threads == 2 and any("try --threads 1" in w for w in told.warnings)
    fast = open_model(str(model_file("mobilenet_v1_0.25_128_quant.tflite")))
    assert fast.engine.threads == 3 and fast.placement.kind == "xnnpack"


@pytest.mark.parametrize(
    ("machine", "version", "words"),
    [
        ("armv7l", (3, 11), "pip install 'tflite-runtime==2.14.*' 'numpy<2'"),
        ("armv7l", (3, 13), "install the 64-bit Raspberry Pi OS, or use Python 3.11"),
        ("armv6l", (3, 11), "no armv6l wheel"),
        ("x86_64", (3, 13), "pip install ai-edge-litert"),
    ],
)
def test_no_backend_hint_fits_the_board(monkeypatch, machine, version, words):
    """What to install when no TFLite backend imports depends on the board: 32-bit Pi OS has no
    ai-edge-litert, and tflite-runtime stops at Python 3.11 (docs/boards.md)."""
    import platform
    import sys

    from edgenet import runtime

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(sys, "version_info", (*version, 0, "final", 0))
    assert words in runtime._install_hint(None)
