"""TFLite model metadata (the "TFLITE_METADATA" buffer): the input's normalization, read without a schema
library. Pure functions over the bytes of a .tflite.

A FlatBuffer table is a signed offset to its vtable followed by its fields; the vtable lists each field's
offset in the table (0: absent). Offsets to tables, strings and vectors are unsigned and relative to where
they are stored. Field numbers below are those of tflite's schema.fbs and metadata_schema.fbs.
"""

from __future__ import annotations

import struct

# schema.fbs: Model { version, operator_codes, subgraphs, description, buffers, metadata_buffer, metadata }
_MODEL_OPERATOR_CODES, _MODEL_BUFFERS, _MODEL_METADATA = 1, 4, 6
_OPCODE_CUSTOM = 1  # OperatorCode { deprecated_builtin_code, custom_code, version, builtin_code }
_METADATA_NAME, _METADATA_BUFFER = 0, 1  # Metadata { name, buffer }
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2  # Buffer { data, offset, size }
# metadata_schema.fbs
_MODEL_META_SUBGRAPHS = 3  # ModelMetadata { name, description, version, subgraph_metadata, ... }
_SUBGRAPH_INPUTS = 2  # SubGraphMetadata { name, description, input_tensor_metadata, ... }
_TENSOR_PROCESS_UNITS = (
    4  # TensorMetadata { name, description, dimension_names, content, process_units, ... }
)
_UNIT_TYPE, _UNIT_OPTIONS = 0, 1  # ProcessUnit { options_type (union tag), options }
_NORMALIZATION = 1  # ProcessUnitOptions.NormalizationOptions
_NORM_MEAN, _NORM_STD = 0, 1  # NormalizationOptions { mean: [float], std: [float] }


class _Table:
    def __init__(self, data: bytes, position: int):
        self.data = data
        self.position = position
        vtable = position - struct.unpack_from("<i", data, position)[0]
        self._vtable = vtable
        self._vtable_size = struct.unpack_from("<H", data, vtable)[0]

    def _field(self, number: int) -> int | None:
        entry = 4 + 2 * number
        if entry >= self._vtable_size:
            return None
        offset = struct.unpack_from("<H", self.data, self._vtable + entry)[0]
        return self.position + offset if offset else None

    def scalar(self, number: int, fmt: str, default=0):
        where = self._field(number)
        return default if where is None else struct.unpack_from("<" + fmt, self.data, where)[0]

    def _target(self, number: int) -> int | None:
        where = self._field(number)
        return None if where is None else where + struct.unpack_from("<I", self.data, where)[0]

    def table(self, number: int) -> _Table | None:
        target = self._target(number)
        return None if target is None else _Table(self.data, target)

    def vector(self, number: int) -> tuple[int, int] | None:
        """(start of the elements, count)."""
        target = self._target(number)
        if target is None:
            return None
        return target + 4, struct.unpack_from("<I", self.data, target)[0]

    def tables(self, number: int) -> list[_Table]:
        found = self.vector(number)
        if found is None:
            return []
        start, count = found
        return [
            _Table(self.data, start + 4 * i + struct.unpack_from("<I", self.data, start + 4 * i)[0])
            for i in range(count)
        ]

    def string(self, number: int) -> str | None:
        found = self.vector(number)
        if found is None:
            return None
        start, count = found
        return self.data[start : start + count].decode("utf-8", errors="replace")

    def floats(self, number: int) -> tuple[float, ...]:
        found = self.vector(number)
        if found is None:
            return ()
        start, count = found
        return struct.unpack_from(f"<{count}f", self.data, start)

    def blob(self, number: int) -> bytes | None:
        found = self.vector(number)
        if found is None:
            return None
        start, count = found
        return self.data[start : start + count]


def _root(data: bytes) -> _Table:
    return _Table(data, struct.unpack_from("<I", data, 0)[0])


def custom_ops(model) -> tuple[str, ...] | None:
    """The names of the model's custom ops (edgetpu-custom-op, TFLite_Detection_PostProcess, ethos-u...),
    from its operator codes; None when they cannot be read (the caller then searches the bytes)."""
    try:
        codes = _root(model).tables(_MODEL_OPERATOR_CODES)
        return tuple(name for code in codes if (name := code.string(_OPCODE_CUSTOM)))
    except (struct.error, IndexError, ValueError):
        return None


def metadata_buffer(model: bytes) -> bytes | None:
    """The bytes of the model's TFLITE_METADATA buffer, or None."""
    root = _root(model)
    for entry in root.tables(_MODEL_METADATA):
        if entry.string(_METADATA_NAME) != "TFLITE_METADATA":
            continue
        index = entry.scalar(_METADATA_BUFFER, "I")
        buffers = root.tables(_MODEL_BUFFERS)
        if index >= len(buffers):
            return None
        buffer = buffers[index]
        data = buffer.blob(_BUFFER_DATA)
        if data:
            return data
        offset, size = buffer.scalar(_BUFFER_OFFSET, "Q"), buffer.scalar(_BUFFER_SIZE, "Q")
        return model[offset : offset + size] if offset > 1 and size else None
    return None


def input_normalization(model: bytes) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """(mean, std) per channel for the first input, from NormalizationOptions in the metadata; or None.

    The model then wants (pixel - mean) / std, pixel in 0..255. Unreadable metadata counts as none.
    """
    try:
        meta = metadata_buffer(model)
        if not meta or meta[4:8] != b"M001":
            return None
        subgraphs = _root(meta).tables(_MODEL_META_SUBGRAPHS)
        inputs = subgraphs[0].tables(_SUBGRAPH_INPUTS) if subgraphs else []
        for unit in inputs[0].tables(_TENSOR_PROCESS_UNITS) if inputs else []:
            if unit.scalar(_UNIT_TYPE, "B") != _NORMALIZATION:
                continue
            options = unit.table(_UNIT_OPTIONS)
            mean, std = (options.floats(_NORM_MEAN), options.floats(_NORM_STD)) if options else ((), ())
            if mean and std and all(s != 0 for s in std):
                return tuple(mean), tuple(std)
    except (struct.error, IndexError, ValueError):
        return None
    return None
