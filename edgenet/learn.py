"""`edgenet learn`: new classes from a folder of photos, one sub-folder per class.

Each photo is prepared exactly as `classify` prepares a frame (shorter side to 256, centre 224, RGB;
cropped to the region first with --roi), turned into an embedding by a feature extractor, and a linear head
is fitted on the embeddings (edgenet.heads). The head is appended to the extractor's graph
(edgenet.learned_model), so the result is one .tflite that classify, eval and bench take like any model; an
Edge TPU twin is written next to it when the extractor has one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from edgenet.errors import EdgenetError, ModelError, UsageError
from edgenet.heads import CHOICES, HEADS, HeldOut, LinearHead, choose, fit_head, held_out, normalize
from edgenet.roi import Region

MIN_PHOTOS = 5
DEFAULT_EXTRACTOR = "v1-embedding"
EDGETPU_SUFFIX = "_edgetpu.tflite"


@dataclass(frozen=True)
class ClassPhotos:
    name: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Extractors:
    """The CPU extractor and, when one exists, its Edge TPU twin (same graph compiled for the TPU)."""

    name: str
    cpu: Path
    edgetpu: Path | None
    edgetpu_missing: str = ""  # why there is no twin, when there is none


@dataclass(frozen=True, eq=False)
class LearnReport:
    output: str
    edgetpu_output: str | None
    extractor: str
    classes: tuple[str, ...]
    photos: tuple[int, ...]  # photos used, per class
    skipped: tuple[tuple[str, str], ...]  # (path, reason)
    head: str
    head_choice: str  # what was asked: auto, logistic or imprinting
    temperature: float
    held_out: dict[str, HeldOut]
    seconds: dict[str, float] = field(default_factory=dict)
    linear_head: LinearHead | None = None  # the head written into the model, to score embeddings in numpy
    notes: tuple[str, ...] = ()  # what the user should know: no Edge TPU twin and why, a stale twin removed

    def to_dict(self) -> dict:
        chosen = self.held_out[self.head]
        return {
            "output": self.output,
            "edgetpu_output": self.edgetpu_output,
            "extractor": self.extractor,
            "classes": list(self.classes),
            "photos": dict(zip(self.classes, self.photos, strict=True)),
            "skipped": [{"source": path, "error": reason} for path, reason in self.skipped],
            "head": self.head,
            "head_choice": self.head_choice,
            "temperature": round(self.temperature, 4),
            "held_out": {
                "folds": chosen.folds,
                "accuracy": {kind: round(result.accuracy, 4) for kind, result in self.held_out.items()},
                "log_loss": {kind: round(result.log_loss, 4) for kind, result in self.held_out.items()},
                "per_class": dict(zip(self.classes, (round(v, 4) for v in chosen.per_class), strict=True)),
            },
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "notes": list(self.notes),
        }


# -- the photos ----------------------------------------------------------------------------------------


def find_classes(folder: str | os.PathLike) -> list[ClassPhotos]:
    """One class per sub-folder (sorted by name; hidden folders ignored), its photos found recursively.
    Refuses, in one line, what cannot be learned: not a folder, fewer than two classes, a class with fewer
    than MIN_PHOTOS photos."""
    from edgenet.sources import expand_inputs

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(
            f"{folder} is not a folder; learn takes a folder with one sub-folder of photos per class "
            "(photos/open/*.jpg, photos/closed/*.jpg)"
        )
    names = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [ClassPhotos(name, tuple(expand_inputs([str(folder / name)]))) for name in names]
    if len(classes) < 2:
        found = f"only one class folder ({names[0]})" if names else "no class folder"
        raise UsageError(
            f"{folder} has {found}; learn needs at least two, one sub-folder of photos per class "
            "(e.g. open/ and closed/)"
        )
    check_counts([(c.name, len(c.paths)) for c in classes], "")
    return classes


def check_counts(counts: list[tuple[str, int]], qualifier: str) -> None:
    short = [f"{name} ({count})" for name, count in counts if count < MIN_PHOTOS]
    if short:
        raise UsageError(
            f"every class needs at least {MIN_PHOTOS} photos{qualifier}; too few in: {', '.join(short)}; "
            "add photos (20 or more per class work better)"
        )


# -- the extractor ------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def extractor_catalog() -> dict[str, dict]:
    """The `extractors` section of the zoo catalog: name -> entry (the zoo's own entry format)."""
    import json

    text = resources.files("edgenet").joinpath("data/catalog.json").read_text(encoding="utf-8")
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
        twin = path.with_name(path.name[: -len(".tflite")] + EDGETPU_SUFFIX)
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
    """One interpreter over the extractor, built once; `embed(frame)` per photo.

    TEMPORARY (for the lead's refactor): runtime.Engine refuses outputs that are not [1, classes], so this
    builds the backend's interpreter itself (`_new_interpreter`). Route it through the engine when the
    engine takes embedding outputs."""

    def __init__(self, path: Path, threads: int | None = None):
        from edgenet.runtime import default_threads, input_spec_from_details, inspect_model_file

        info = inspect_model_file(path)
        if info.needs_edgetpu:
            raise UsageError(f"{path.name} is compiled for the Edge TPU; give the CPU extractor")
        self.threads = threads or default_threads()
        self.interpreter = _new_interpreter(path, self.threads)
        detail = self.interpreter.get_input_details()[0]
        self.input = input_spec_from_details(detail, self.interpreter, None, info.normalization)
        self._input_index = int(detail["index"])
        out = self.interpreter.get_output_details()[0]
        shape = [int(v) for v in out["shape"]]
        self.dim = int(np.prod(shape))
        if shape[0] != 1 or self.dim != max(shape) or self.dim < 2:
            raise ModelError(f"{path.name}'s output {shape} is not an embedding [1, ..., size]")
        self.dtype = np.dtype(out["dtype"])
        if self.dtype not in (np.uint8, np.int8, np.float32):
            raise ModelError(f"{path.name}'s output is {self.dtype}; learn takes uint8, int8 or float32")
        scale, zero_point = out["quantization"]
        self.scale, self.zero_point = np.float32(scale or 1.0), np.float32(zero_point or 0)
        self._output_index = int(out["index"])

    def embed(self, image_bgr: np.ndarray, region: Region | None = None) -> np.ndarray:
        """A BGR frame -> its float32 embedding (dequantized as TFLite's DEQUANTIZE does)."""
        from edgenet.imaging import prepare

        if region is not None:
            image_bgr = region.crop(image_bgr)
        self.interpreter.set_tensor(self._input_index, prepare(image_bgr, self.input, "crop"))
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._output_index).reshape(-1)
        if self.dtype == np.float32:
            return raw.astype(np.float32)
        return (raw.astype(np.float32) - self.zero_point) * self.scale


def _new_interpreter(path: Path, threads: int):
    """The backend's interpreter for the extractor (default delegates, XNNPACK where the backend has it;
    without them, on one thread, if they fail to prepare it). Temporary: see EmbeddingExtractor."""
    from edgenet.errors import one_line
    from edgenet.runtime import _runtime_info_filtered, load_backend

    backend = load_backend()
    kwargs = {"model_path": str(path), "num_threads": threads}
    try:
        with _runtime_info_filtered():
            interpreter = backend.interpreter_class(**kwargs)
            try:
                interpreter.allocate_tensors()
            except RuntimeError:
                if backend.op_resolver_type is None:
                    raise
                kwargs["experimental_op_resolver_type"] = (
                    backend.op_resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                )
                kwargs["num_threads"] = 1  # ai-edge-litert's builtin kernels are far slower with more
                interpreter = backend.interpreter_class(**kwargs)
                interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot load the extractor {path.name}: {one_line(exc)}") from None
    return interpreter


def embed_photos(
    classes: list[ClassPhotos],
    extractor: EmbeddingExtractor,
    region: Region | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Embeddings [n, dim] and class indices [n] of every photo that can be read; the others as
    (path, reason), each also handed to `on_skip` as it happens."""
    from edgenet.imaging import read_image

    rows, labels, skipped = [], [], []
    for index, photos in enumerate(classes):
        for path in photos.paths:
            try:
                rows.append(extractor.embed(read_image(path), region))
            except EdgenetError as exc:
                reason = str(exc)
            except Exception as exc:  # an odd image OpenCV decodes but cannot resize
                reason = f"cannot preprocess image: {' '.join(str(exc).split())[:200]}"
            else:
                labels.append(index)
                continue
            skipped.append((path, reason))
            if on_skip is not None:
                on_skip(path, reason)
    embeddings = np.stack(rows) if rows else np.zeros((0, extractor.dim), np.float32)
    return embeddings, np.asarray(labels, dtype=int), skipped


# -- the whole command ------------------------------------------------------------------------------------


def output_paths(output: str | os.PathLike) -> tuple[Path, Path]:
    """The model's path and its Edge TPU twin's (`garage.tflite` -> `garage_edgetpu.tflite`)."""
    path = Path(output)
    if path.name.endswith(EDGETPU_SUFFIX):
        raise UsageError(
            f"-o {path}: name the CPU model (garage.tflite); its Edge TPU twin is written next to it"
        )
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; give the .tflite file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {path}: the folder {parent} does not exist")
    stem = path.name[: -len(".tflite")] if path.name.endswith(".tflite") else path.name
    return path, path.with_name(stem + EDGETPU_SUFFIX)


def learn(
    folder: str | os.PathLike,
    output: str | os.PathLike,
    *,
    extractor: str | None = None,
    head: str = "auto",
    region: Region | None = None,
    threads: int | None = None,
    on_skip: Callable[[str, str], None] | None = None,
) -> LearnReport:
    """Photos in class folders -> a .tflite (extractor + head + labels), plus its Edge TPU twin when the
    extractor has one. Held-out accuracy of every head comes from 5-fold cross-validation."""
    if head not in CHOICES:
        raise UsageError(f"unknown --head {head!r}; choose one of {', '.join(CHOICES)}")
    path, twin_path = output_paths(output)
    classes = find_classes(folder)
    extractors = resolve_extractor(extractor)
    engine = EmbeddingExtractor(extractors.cpu, threads)
    started = time.perf_counter()
    embeddings, labels, skipped = embed_photos(classes, engine, region, on_skip)
    counts = [int((labels == k).sum()) for k in range(len(classes))]
    check_counts([(c.name, n) for c, n in zip(classes, counts, strict=True)], " that can be read")
    embedded = time.perf_counter()
    unit = normalize(embeddings.astype(np.float64))
    results = {kind: held_out(kind, unit, labels, len(classes)) for kind in HEADS}
    chosen = choose(results, head)
    final = fit_head(chosen, embeddings, labels, len(classes), results[chosen].temperature)
    fitted = time.perf_counter()
    names = [c.name for c in classes]
    description = (
        f"edgenet learn: {chosen} head on {extractors.name}, {len(names)} classes, {len(labels)} photos"
    )
    twin_written, notes = _write_models(extractors, final, names, description, path, twin_path)
    return LearnReport(
        output=str(path),
        edgetpu_output=str(twin_path) if twin_written else None,
        extractor=extractors.name,
        classes=tuple(names),
        photos=tuple(counts),
        skipped=tuple(skipped),
        head=chosen,
        head_choice=head,
        temperature=final.temperature,
        held_out=results,
        seconds={
            "embeddings": embedded - started,
            "heads": fitted - embedded,
            "write": time.perf_counter() - fitted,
        },
        linear_head=final,
        notes=tuple(notes),
    )


def _write_models(extractors: Extractors, head, names, description, path: Path, twin_path: Path):
    """Write the model, and the Edge TPU twin when the extractor has a matching one; a twin left by an
    earlier learn that this run cannot replace is removed, so that it is never taken for this model."""
    from edgenet.learned_model import append_head, describe, write_model

    write_model(path, append_head(extractors.cpu.read_bytes(), head, description), names)
    notes = []
    reason = extractors.edgetpu_missing
    if extractors.edgetpu is not None:
        cpu, tpu = describe(extractors.cpu), describe(extractors.edgetpu)
        if _tensor_key(cpu.outputs[0]) == _tensor_key(tpu.outputs[0]) and _tensor_key(
            cpu.inputs[0]
        ) == _tensor_key(tpu.inputs[0]):
            write_model(twin_path, append_head(extractors.edgetpu.read_bytes(), head, description), names)
            return True, notes
        reason = f"{extractors.edgetpu.name} does not take and give the same tensors as the CPU extractor"
    notes.append(f"no Edge TPU model written: {reason}")
    if twin_path.is_file():
        try:
            stale = describe(twin_path).description.startswith("edgenet learn")
        except Exception:
            stale = False
        if stale:
            twin_path.unlink()
            notes.append(f"removed {twin_path.name}, left by an earlier learn: it held the old classes")
        else:
            notes.append(f"{twin_path.name} exists and was not written by this learn: it is not this model")
    return False, notes


def _tensor_key(tensor: dict) -> tuple:
    scale, zero_point = tensor["quantization"]
    return tuple(tensor["shape"]), tensor["type"], round(scale, 9), zero_point
