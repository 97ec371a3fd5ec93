"""Write a learned model: an embedding extractor's graph with a linear head appended as builtin TFLite ops,
and the class labels embedded as an appended zip (the layout TFLite metadata uses for associated files).

The head, after the extractor's output tensor E ([1, ..., dim], uint8/int8 quantized or float32):

    E -> DEQUANTIZE (quantized E only) -> L2_NORMALIZATION -> FULLY_CONNECTED (float32 weights, bias)
      -> SOFTMAX -> probabilities [1, classes] (the graph's only output)

The same head goes after an Edge TPU extractor's `edgetpu-custom-op`: the backbone runs on the TPU, the head
on the CPU, as in Coral's imprinted models. Flatbuffers are read and written with the object API of
ai-edge-litert's own copy of the TFLite schema (`ai_edge_litert.schema_py_generated`).
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgenet.errors import DeviceError, ModelError
from edgenet.heads import LinearHead
from edgenet.labels import parse_labels

LABELS_FILE = "labels.txt"
HEAD_OPS = ("DEQUANTIZE", "L2_NORMALIZATION", "FULLY_CONNECTED", "SOFTMAX")
_TFLITE_IDENTIFIER = b"TFL3"
_QUANTIZED_TYPES = {"UINT8": 1, "INT8": 2}  # tensor type -> DEQUANTIZE op version


@dataclass(frozen=True)
class Graph:
    """What a model file holds, for checks and reports: op names in execution order, and its tensors."""

    ops: tuple[str, ...]
    inputs: tuple[dict, ...]
    outputs: tuple[dict, ...]
    description: str


def _schema():
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError:
        raise ModelError(
            "writing a learned model needs the TFLite schema shipped with ai-edge-litert: "
            "pip install ai-edge-litert (or learn on another machine and copy the .tflite)"
        ) from None
    return schema_py_generated


def _aligned_builder():
    """A flatbuffers Builder that starts every byte vector (weights, custom op payloads) on 16 bytes, as
    TFLite's converter and the Edge TPU compiler do; the generated Pack() would otherwise align them on 1."""
    import flatbuffers

    class AlignedBuilder(flatbuffers.Builder):
        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
            if x.dtype == np.uint8:
                self.Prep(16, x.nbytes)
            return super().CreateNumpyVector(x)

    return AlignedBuilder(1 << 20)


def read_model(data: bytes):
    schema = _schema()
    if len(data) < 8 or data[4:8] != _TFLITE_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 flatbuffer header)")
    return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


def pack_model(model) -> bytes:
    builder = _aligned_builder()
    builder.Finish(model.Pack(builder), file_identifier=_TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _type_name(schema, code: int) -> str:
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    return names.get(code, str(code))


def _opcode(schema, model, builtin: int, version: int = 1) -> int:
    """Index of a builtin op code in the model, added when missing."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and not code.customCode:
            code.version = max(code.version, version)
            return index
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin  # the head's ops are all below 127
    code.version = version
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _buffer(schema, model, array: np.ndarray | None) -> int:
    buffer = schema.BufferT()
    if array is not None:
        buffer.data = np.frombuffer(
            np.ascontiguousarray(array).astype("<" + array.dtype.str[1:]).tobytes(), np.uint8
        )
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def _tensor(schema, model, graph, name: str, shape, type_code: int, data: np.ndarray | None = None) -> int:
    tensor = schema.TensorT()
    tensor.name = name.encode()
    tensor.shape = np.asarray(shape, dtype=np.int32)
    tensor.type = type_code
    tensor.buffer = _buffer(schema, model, data) if data is not None else _empty_buffer(schema, model)
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def _empty_buffer(schema, model) -> int:
    """Buffer 0 is the empty buffer by convention: activations point at it."""
    if model.buffers and model.buffers[0].data is None:
        return 0
    return _buffer(schema, model, None)


def _operator(schema, model, graph, builtin: int, inputs, outputs, options_type=0, options=None, version=1):
    op = schema.OperatorT()
    op.opcodeIndex = _opcode(schema, model, builtin, version)
    op.inputs = np.asarray(inputs, dtype=np.int32)
    op.outputs = np.asarray(outputs, dtype=np.int32)
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    graph.operators.append(op)


def append_head(extractor: bytes, head: LinearHead, description: str = "") -> bytes:
    """The extractor's flatbuffer with `head` appended after its only output; returns the new flatbuffer."""
    schema = _schema()
    model = read_model(extractor)
    if len(model.subgraphs) != 1 or len(model.subgraphs[0].outputs) != 1:
        raise ModelError("an embedding extractor has one graph with one output; this one has more")
    graph = model.subgraphs[0]
    embedding = graph.tensors[int(graph.outputs[0])]
    dim = int(np.prod(embedding.shape))
    if head.weights.shape[1] != dim:
        raise ModelError(f"the head takes {head.weights.shape[1]} values but the extractor gives {dim}")
    kind = _type_name(schema, embedding.type)
    if kind not in (*_QUANTIZED_TYPES, "FLOAT32"):
        raise ModelError(f"the extractor's output is {kind}; edgenet learn takes uint8, int8 or float32")
    op, options, float32 = schema.BuiltinOperator, schema.BuiltinOptions, schema.TensorType.FLOAT32
    shape = [int(v) for v in embedding.shape]
    source = int(graph.outputs[0])

    def add(name, shape, data=None, type_code=float32):
        return _tensor(schema, model, graph, f"edgenet/head/{name}", shape, type_code, data)

    if kind in _QUANTIZED_TYPES:
        real = add("embedding", shape)
        _operator(schema, model, graph, op.DEQUANTIZE, [source], [real], version=_QUANTIZED_TYPES[kind])
        source = real
    unit = add("normalized", shape)
    _operator(
        schema,
        model,
        graph,
        op.L2_NORMALIZATION,
        [source],
        [unit],
        options.L2NormOptions,
        schema.L2NormOptionsT(),
    )
    weights = add("weights", head.weights.shape, head.weights.astype(np.float32))
    bias = add("bias", head.bias.shape, head.bias.astype(np.float32))
    logits = add("logits", [1, head.classes])
    fc = schema.FullyConnectedOptionsT()
    _operator(
        schema,
        model,
        graph,
        op.FULLY_CONNECTED,
        [unit, weights, bias],
        [logits],
        options.FullyConnectedOptions,
        fc,
    )
    scores = add("probabilities", [1, head.classes])
    softmax = schema.SoftmaxOptionsT()
    softmax.beta = 1.0
    _operator(schema, model, graph, op.SOFTMAX, [logits], [scores], options.SoftmaxOptions, softmax)
    graph.outputs = np.asarray([scores], dtype=np.int32)
    model.signatureDefs = None  # they named the extractor's output, which is no longer the graph's
    model.description = description.encode() if description else model.description
    return pack_model(model)


def _label_line(name: str) -> str:
    """A class (folder) name as one line of UTF-8: bytes that are not UTF-8 (a Latin-1 folder name) become
    U+FFFD, line breaks and other control characters a space."""
    text = os.fsencode(name).decode("utf-8", "replace") if isinstance(name, str) else str(name)
    return "".join(" " if ord(char) < 32 or char == "\x7f" else char for char in text)


def labels_text(labels: list[str]) -> str:
    """One label per line; `index:label` lines when plain lines would be read back differently (labels
    that start with a number, like `1 car`, would otherwise look like an indexed label file)."""
    labels = [_label_line(label) for label in labels]
    plain = "\n".join(labels) + "\n"
    if parse_labels(plain) == list(labels):
        return plain
    return "".join(f"{index}:{label}\n" for index, label in enumerate(labels))


def write_model(path: str | os.PathLike, flatbuffer: bytes, labels: list[str]) -> Path:
    """The flatbuffer plus a zip holding labels.txt, written to a temporary file and renamed into place."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise DeviceError(
            f"cannot write {path}: {exc.strerror or exc}; check the folder exists and is writable"
        ) from None
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(flatbuffer)
        with zipfile.ZipFile(temporary, "a", compression=zipfile.ZIP_STORED) as archive:
            entry = zipfile.ZipInfo(LABELS_FILE, date_time=(1980, 1, 1, 0, 0, 0))  # same input, same bytes
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, labels_text(labels))
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException as exc:  # no temporary file left behind, whatever went wrong
        Path(temporary).unlink(missing_ok=True)
        if not isinstance(exc, OSError):
            raise
        raise DeviceError(
            f"cannot write {path}: {exc.strerror or exc}; free some space or write elsewhere"
        ) from None
    return path


def describe(path: str | os.PathLike) -> Graph:
    """The ops (in order) and input/output tensors of a .tflite, read from its flatbuffer alone: works for
    Edge TPU models, which no CPU interpreter can load."""
    schema = _schema()
    model = read_model(Path(path).read_bytes())
    graph = model.subgraphs[0]
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}

    def op_name(op) -> str:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode:
            return code.customCode.decode()
        return names.get(max(code.builtinCode, code.deprecatedBuiltinCode), "?")

    def tensor(index) -> dict:
        t = graph.tensors[int(index)]
        q = t.quantization
        scale = float(q.scale[0]) if q is not None and q.scale is not None and len(q.scale) else 0.0
        zero = int(q.zeroPoint[0]) if q is not None and q.zeroPoint is not None and len(q.zeroPoint) else 0
        return {
            "index": int(index),
            "name": (t.name or b"").decode(),
            "shape": [int(v) for v in t.shape],
            "type": _type_name(schema, t.type).lower(),
            "quantization": (scale, zero),
        }

    return Graph(
        ops=tuple(op_name(op) for op in graph.operators),
        inputs=tuple(tensor(i) for i in graph.inputs),
        outputs=tuple(tensor(i) for i in graph.outputs),
        description=(model.description or b"").decode(errors="replace"),
    )
