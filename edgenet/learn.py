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
from pathlib import Path

import numpy as np

from edgenet.embeddings import EDGETPU_SUFFIX, EmbeddingExtractor, Extractors, resolve_extractor
from edgenet.errors import EdgenetError, UsageError
from edgenet.heads import CHOICES, HEADS, HeldOut, LinearHead, choose, fit_head, held_out, normalize
from edgenet.roi import Region

MIN_PHOTOS = 5


@dataclass(frozen=True)
class ClassPhotos:
    name: str
    paths: tuple[str, ...]


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
    if path.exists() and not path.is_file():  # a device or a FIFO: the new model is renamed into place
        raise UsageError(f"-o {path} is not a regular file; give the .tflite file to write")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise UsageError(f"-o {path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):  # said now, not after the work
        raise UsageError(f"-o {path}: the folder {parent} cannot be written; give a writable place")
    if path.suffix.lower() != ".tflite":
        raise UsageError(f"-o {path}: give a .tflite file name (garage.tflite)")
    return path, path.with_name(path.stem + EDGETPU_SUFFIX)


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
        notes=tuple(_loose_photos(folder) + notes),
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


def _loose_photos(folder) -> list[str]:
    from edgenet.imaging import IMAGE_EXTENSIONS

    loose = [p for p in Path(folder).iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_EXTENSIONS)]
    if not loose:
        return []
    count = f"{len(loose)} photo{'s' if len(loose) != 1 else ''}"
    return [f"{count} directly in {folder} not used: put each in its class's folder"]


def _tensor_key(tensor: dict) -> tuple:
    scale, zero_point = tensor["quantization"]
    return tuple(tensor["shape"]), tensor["type"], round(scale, 9), zero_point
