"""Embedding extractors for `edgenet learn`: the catalog's (the `extractors` section of the zoo catalog) or a
.tflite path, each with its Edge TPU twin when there is one, and one interpreter that turns a frame into an
embedding, prepared exactly as `classify` prepares a frame."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from edgenet.data_files import read_text
from edgenet.errors import EdgenetError, ModelError, UsageError
from edgenet.roi import Region

DEFAULT_EXTRACTOR = "v1-embedding"
EDGETPU_SUFFIX = "_edgetpu.tflite"


@dataclass(frozen=True)
class Extractors:
    """The CPU extractor and, when one exists, its Edge TPU twin (same graph compiled for the TPU)."""

    name: str
    cpu: Path
    edgetpu: Path | None
    edgetpu_missing: str = ""  # why there is no twin, when there is none


@lru_cache(maxsize=1)
def extractor_catalog() -> dict[str, dict]:
    """The `extractors` section of the zoo catalog: name -> entry (the zoo's own entry format)."""
    import json

    text = read_text("catalog.json")
    return {entry["name"]: entry for entry in json.loads(text).get("extractors", [])}


def resolve_extractor(name_or_path: str | None) -> Extractors:
    """A path to an extractor .tflite (its twin: the `_edgetpu.tflite` file next to it), or a catalog name
    (pulled like a zoo model, its twin too when it can be)."""
    from edgenet import zoo

    name_or_path = name_or_path or DEFAULT_EXTRACTOR
    entries = extractor_catalog()
    if name_or_path not in entries:
        if not zoo.looks_like_path(name_or_path):
            raise UsageError(
                f"unknown extractor {name_or_path!r}; give a .tflite path or one of: {', '.join(entries)}"
            )
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise ModelError(f"extractor not found: {path}; give an embedding extractor .tflite")
        if path.name.endswith(EDGETPU_SUFFIX):
            raise UsageError(
                f"{path.name} is compiled for the Edge TPU; give the CPU extractor (the _edgetpu file "
                "next to it is then used for the Edge TPU model)"
            )
        twin = path.with_name(path.name.removesuffix(".tflite") + EDGETPU_SUFFIX)
        missing = "" if twin.is_file() else f"no {twin.name} next to the extractor"
        return Extractors(path.name, path, twin if twin.is_file() else None, missing)
    entry = entries[name_or_path]
    cpu = zoo.pull(_artifact(entry))
    if not entry.get("edgetpu"):
        return Extractors(name_or_path, cpu, None, f"{name_or_path} has no Edge TPU twin")
    try:
        return Extractors(name_or_path, cpu, zoo.pull(_artifact(entry["edgetpu"])))
    except EdgenetError as exc:
        return Extractors(name_or_path, cpu, None, str(exc))


def _artifact(entry: dict):
    from edgenet.zoo import Artifact

    return Artifact(
        file=entry["file"], url=entry.get("url"), sha256=entry.get("sha256"), size=entry.get("size")
    )


class EmbeddingExtractor:
    """One interpreter over the extractor (the engine, as every model gets it), built once; `embed(frame)`
    per photo."""

    def __init__(self, path: Path, threads: int | None = None):
        from edgenet.delegates import build_engine
        from edgenet.placement import Placement
        from edgenet.runtime import default_threads
        from edgenet.tensors import inspect_model_file

        info = inspect_model_file(path)
        if info.needs_edgetpu:
            raise UsageError(f"{path.name} is compiled for the Edge TPU; give the CPU extractor")
        self.threads = threads or default_threads()
        self.engine = build_engine(
            path, Placement(kind="xnnpack", fallback=True), threads=self.threads, file_info=info
        )
        self.input = self.engine.input
        out = self.engine.outputs[0]
        shape = list(out.shape)
        self.dim = int(np.prod(shape))
        if len(self.engine.outputs) != 1 or shape[0] != 1 or self.dim != max(shape) or self.dim < 2:
            raise ModelError(f"{path.name}'s output {shape} is not an embedding [1, ..., size]")
        self.dtype = np.dtype(out.dtype)
        if self.dtype not in (np.uint8, np.int8, np.float32):
            raise ModelError(f"{path.name}'s output is {self.dtype}; learn takes uint8, int8 or float32")
        self.scale, self.zero_point = np.float32(out.scale or 1.0), np.float32(out.zero_point or 0)

    def embed(self, image_bgr: np.ndarray, region: Region | None = None) -> np.ndarray:
        """A BGR frame -> its float32 embedding (dequantized as TFLite's DEQUANTIZE does)."""
        from edgenet.imaging import prepare

        if region is not None:
            image_bgr = region.crop(image_bgr)
        raw = self.engine.run(prepare(image_bgr, self.input, "crop"))[0].reshape(-1)
        if self.dtype == np.float32:
            return raw.astype(np.float32)
        return (raw.astype(np.float32) - self.zero_point) * self.scale
