"""Label files in every format met in the wild, and labels embedded in a .tflite (an appended zip)."""

from __future__ import annotations

import re
import zipfile
from functools import lru_cache
from importlib import resources
from pathlib import Path

from edgenet.errors import UsageError

_INDEXED = re.compile(r"^\s*(\d+)(?::\s*|\s+)(\S.*?)\s*$")
BACKGROUND = "background"


def parse_labels(text: str) -> list[str]:
    """Plain lines, `0:label`, `0  label` or `0 label` -> list indexed by class id.

    The indexed form is used only when every non-empty line has an index, so plain labels that happen to
    start with a digit stay plain. Gaps in an indexed file become the index as text.
    """
    lines = [line.rstrip("\r") for line in text.splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    content = [line for line in lines if line.strip()]
    matches = [_INDEXED.match(line) for line in content]
    if content and all(matches):
        table = {int(m.group(1)): m.group(2) for m in matches}
        return [table.get(i, str(i)) for i in range(max(table) + 1)]
    return [line.strip() for line in lines]


def read_labels(path: str | Path) -> list[str]:
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"cannot read labels {path}: {exc.strerror or exc}; check --labels") from None
    labels = parse_labels(text)
    if not labels:
        raise UsageError(f"labels file {path} is empty; give one label per line")
    return labels


def embedded_labels(model_path: str | Path) -> list[str] | None:
    """Labels stored in a .tflite's appended zip (TFLite metadata packs associated files this way)."""
    try:
        if not zipfile.is_zipfile(model_path):
            return None
        with zipfile.ZipFile(model_path) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".txt") and "label" in n.lower()]
            names = names or [n for n in archive.namelist() if n.lower().endswith(".txt")]
            if not names:
                return None
            labels = parse_labels(archive.read(names[0]).decode("utf-8", errors="replace"))
            return labels or None
    except (OSError, zipfile.BadZipFile):
        return None


@lru_cache(maxsize=2)
def imagenet_labels() -> tuple[str, ...]:
    """The 1001 ImageNet labels, `background` first (package data)."""
    text = resources.files("edgenet").joinpath("data/imagenet_labels.txt").read_text(encoding="utf-8")
    return tuple(parse_labels(text))


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in sorted order: wnid k is class k (1000) or k + 1 (1001)."""
    text = resources.files("edgenet").joinpath("data/imagenet_wnids.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def fit_to_classes(labels: list[str] | tuple[str, ...] | None, classes: int) -> list[str] | None:
    """Line a label list up with a model's output: add or drop a leading `background` when off by one."""
    if labels is None:
        return None
    labels = list(labels)
    if len(labels) == classes + 1 and labels[0].strip().lower() in (BACKGROUND, "???", "unknown"):
        return labels[1:]
    if len(labels) == classes - 1:
        return [BACKGROUND, *labels]
    return labels


def labels_for_model(
    model_path: str | Path, classes: int, labels_file: str | None = None, catalog_labels: str | None = None
) -> tuple[list[str] | None, str]:
    """The labels a model's scores are named with, and where they came from.

    Order: --labels FILE, labels embedded in the .tflite, the catalog's, then ImageNet when the output
    has 1000 or 1001 classes. Otherwise None (labels are the class index).
    """
    if labels_file:
        return fit_to_classes(read_labels(labels_file), classes), str(labels_file)
    found = embedded_labels(model_path)
    if found:
        return fit_to_classes(found, classes), "embedded"
    if catalog_labels and catalog_labels != "imagenet" and Path(catalog_labels).is_file():
        return fit_to_classes(read_labels(catalog_labels), classes), catalog_labels
    if catalog_labels == "imagenet" or classes in (1000, 1001):
        return fit_to_classes(imagenet_labels(), classes), "imagenet"
    return None, "none"
