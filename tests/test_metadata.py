"""Input normalization from TFLite metadata, read from real files (the Coral models carry metadata), and from
a real float model given metadata here with the flatbuffers library."""

import cv2
import flatbuffers
import numpy as np
import pytest

from edgenet.imaging import prepare
from edgenet.metadata import input_normalization, metadata_buffer
from edgenet.runtime import Engine


def test_coral_models_carry_normalization_metadata(model_file):
    data = model_file("mobilenet_v1_0.25_128_quant.tflite").read_bytes()
    assert metadata_buffer(data)[4:8] == b"M001"
    assert input_normalization(data) == ((127.5,), (127.5,))
    assert input_normalization(model_file("mobilenet_v1_0.25_224_1_default_1.tflite").read_bytes()) is None


def test_garbage_is_no_metadata():
    assert input_normalization(b"\x00" * 64) is None


def _metadata(mean, std) -> bytes:
    """ModelMetadata { subgraph_metadata: [ { input_tensor_metadata: [ { process_units: [
    { options_type: NormalizationOptions, options: { mean, std } } ] } ] } ] }, file identifier M001."""
    b = flatbuffers.Builder(256)

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def tables(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    mean_v, std_v = floats(mean), floats(std)
    b.StartObject(2)
    b.PrependUOffsetTRelativeSlot(0, mean_v, 0)
    b.PrependUOffsetTRelativeSlot(1, std_v, 0)
    options = b.EndObject()
    b.StartObject(2)
    b.PrependUint8Slot(0, 1, 0)  # NormalizationOptions
    b.PrependUOffsetTRelativeSlot(1, options, 0)
    unit = b.EndObject()
    units = tables([unit])
    b.StartObject(7)
    b.PrependUOffsetTRelativeSlot(4, units, 0)
    tensor = b.EndObject()
    inputs = tables([tensor])
    b.StartObject(3)
    b.PrependUOffsetTRelativeSlot(2, inputs, 0)
    subgraph = b.EndObject()
    subgraphs = tables([subgraph])
    b.StartObject(4)
    b.PrependUOffsetTRelativeSlot(3, subgraphs, 0)
    b.Finish(b.EndObject(), file_identifier=b"M001")
    return bytes(b.Output())


def with_metadata(model: bytes, meta: bytes) -> bytes:
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(meta, np.uint8)
    graph.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = "TFLITE_METADATA"
    entry.buffer = len(graph.buffers) - 1
    graph.metadata = (graph.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(graph.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize(
    ("mean", "std", "expected"), [([127.5], [127.5], (-1.0, 1.0)), ([0.0], [255.0], (0.0, 1.0))]
)
def test_float_model_takes_its_range_from_metadata(tmp_path, model_file, images, mean, std, expected):
    original = model_file("mobilenet_v1_0.25_224_1_default_1.tflite").read_bytes()
    path = tmp_path / "float_with_metadata.tflite"
    path.write_bytes(with_metadata(original, _metadata(mean, std)))
    engine = Engine(path, threads=1)
    assert engine.input.range_source == "metadata"
    assert engine.input.value_range == pytest.approx(expected)
    cat = cv2.imread(str(images / "cat.bmp"))
    tensor = prepare(cat, engine.input)
    assert tensor.min() >= expected[0] - 1e-6 and tensor.max() <= expected[1] + 1e-6
    if mean == [127.5]:  # the range the model was trained with: same scores as without metadata
        plain = Engine(model_file("mobilenet_v1_0.25_224_1_default_1.tflite"), threads=1)
        assert plain.input.range_source == "default"
        np.testing.assert_allclose(engine.run(tensor)[0], plain.run(prepare(cat, plain.input))[0], atol=1e-5)


def test_per_channel_normalization(tmp_path, model_file):
    original = model_file("mobilenet_v1_0.25_224_1_default_1.tflite").read_bytes()
    path = tmp_path / "imagenet_norm.tflite"
    path.write_bytes(with_metadata(original, _metadata([123.675, 116.28, 103.53], [58.395, 57.12, 57.375])))
    spec = Engine(path, threads=1).input
    assert spec.mean == pytest.approx((123.675, 116.28, 103.53)) and len(spec.std) == 3
    pixels = np.full((224, 224, 3), 255, np.uint8)
    from edgenet.imaging import to_input_tensor

    np.testing.assert_allclose(
        to_input_tensor(pixels, spec)[0, 0, 0],
        [(255 - 123.675) / 58.395, (255 - 116.28) / 57.12, (255 - 103.53) / 57.375],
        rtol=1e-5,
    )


def test_custom_ops_come_from_the_operator_codes(model_file):
    from edgenet.metadata import custom_ops

    def ops(name: str):
        return custom_ops(model_file(name).read_bytes())

    assert ops("mobilenet_v1_0.25_128_quant_edgetpu.tflite") == ("edgetpu-custom-op",)
    assert "TFLite_Detection_PostProcess" in ops("ssd_mobilenet_v1_1_default_1.tflite")
    assert ops("mobilenet_v1_0.25_128_quant.tflite") == ()
    assert custom_ops(b"TFL3" + b"\xff" * 60) is None  # unreadable: the caller searches the bytes


def test_a_file_whose_op_codes_cannot_be_read_is_judged_by_its_bytes(tmp_path, model_file):
    """A TFL3 header over a broken flatbuffer: the op names anywhere in the file still decide."""
    from edgenet.errors import ModelError
    from edgenet.tensors import inspect_model_file

    broken = tmp_path / "broken_edgetpu.tflite"
    broken.write_bytes(b"\xff\xff\xff\x7fTFL3" + b"\x00" * 64 + b"edgetpu-custom-op" + b"\x00" * 64)
    assert inspect_model_file(broken).needs_edgetpu
    vela = tmp_path / "vela.tflite"
    vela.write_bytes(b"\xff\xff\xff\x7fTFL3" + b"\x00" * 64 + b"ethos-u" + b"\x00" * 64)
    with pytest.raises(ModelError, match="Ethos-U"):
        inspect_model_file(vela)
    empty = tmp_path / "empty.tflite"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match="not a TFLite model"):
        inspect_model_file(empty)
