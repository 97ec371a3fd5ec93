"""Label files in every format met in the wild, and labels embedded in a .tflite (an appended zip)."""

from __future__ import annotations

import io
import itertools
import os
import re
from functools import lru_cache
from pathlib import Path

from edgenet.data_files import read_text
from edgenet.errors import UsageError
from edgenet.lightclass import lightclass

_INDEXED = re.compile(r"^\s*(\d+)(?::\s*|\s+)(\S.*?)\s*$")
BACKGROUND = "background"
MAX_CLASSES = 1_000_000  # indices past this are dropped when the model's class count is not known
MAX_LABELS_BYTES = 16 * 1024 * 1024  # ImageNet-21k's 21,843 labels take 0.4 MB


@lightclass
class ModelLabels:
    """The labels a model's scores are named with, where they came from, and what was wrong with them."""

    labels: list[str] | None
    source: str
    warnings: tuple[str, ...] = ()


def parse_labels(text: str, limit: int | None = None, dropped: list[str] | None = None) -> list[str]:
    """Plain lines, `0:label`, `0  label` or `0 label` -> list indexed by class id.

    The indexed form is used only when every non-empty line has an index, so plain labels that happen to
    start with a digit stay plain. Gaps in an indexed file become the index as text. Classes at or past
    `limit` (default MAX_CLASSES), by index or by line, are left out, never allocated, and described in
    `dropped` when given: memory stays bounded by the limit whatever the file says.
    """
    limit = MAX_CLASSES if limit is None else limit
    lines = io.StringIO(text)
    indexed = any(line.strip() for line in lines)
    lines.seek(0)
    indexed = indexed and all(_INDEXED.match(line) for line in lines if line.strip())
    lines.seek(0)
    if not indexed:
        plain = [line.strip() for line in itertools.islice(lines, limit)]
        extra = sum(1 for line in lines if line.strip())
        while plain and not plain[-1] and not extra:
            plain.pop()
        if extra and dropped is not None:
            dropped.append(f"{extra} more line(s) after line {limit}")
        return plain
    table: dict[int, str] = {}
    for line in lines:
        match = _INDEXED.match(line)
        if match is None:
            continue
        digits = match.group(1)
        index = int(digits) if len(digits) <= 18 else limit  # int() of 4300+ digits raises
        if index < limit:
            table[index] = match.group(2)
        elif dropped is not None and len(dropped) < 10:
            dropped.append(f"index {digits if len(digits) <= 20 else digits[:20] + '...'}")
    return [table.get(i, str(i)) for i in range(max(table) + 1)] if table else []


def decode_text(data: bytes) -> str:
    """Label file bytes as text: UTF-8 (with or without its BOM), or UTF-16/UTF-32 by their BOM; UTF-16
    without one when every other byte is zero (what Windows tools write)."""
    for bom, encoding in (
        (b"\xef\xbb\xbf", "utf-8-sig"),
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    sample = data[:4096]
    if len(sample) >= 4 and sample.count(0) * 3 >= len(sample):
        odd_zeros = sample[1::2].count(0)
        return data.decode(
            "utf-16-le" if odd_zeros >= sample[0::2].count(0) else "utf-16-be", errors="replace"
        )
    return data.decode("utf-8", errors="replace")


def read_labels(path: str | Path, limit: int | None = None, dropped: list[str] | None = None) -> list[str]:
    """A labels file (see parse_labels); UsageError when it cannot be read, is empty or is far too big."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_LABELS_BYTES + 1)
    except OSError as exc:
        raise UsageError(f"cannot read labels {path}: {exc.strerror or exc}; check --labels") from None
    if len(data) > MAX_LABELS_BYTES:
        raise UsageError(
            f"labels file {path} is over {MAX_LABELS_BYTES // 2**20} MB: not a labels file (one short line "
            "per class); check --labels"
        )
    labels = parse_labels(decode_text(data), limit, dropped)
    if not labels:
        raise UsageError(f"labels file {path} is empty; give one label per line")
    return labels


def _ends_like_a_zip(path: str | Path) -> bool:
    """A zip's end record (b"PK\x05\x06") in the file's last 64 KiB + 22 bytes, where zipfile looks for it:
    most models have none, and reading the tail spares them importing zipfile."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - (1 << 16) - 22))
            return b"PK\x05\x06" in handle.read()
    except OSError:
        return False


def embedded_labels(
    model_path: str | Path,
    limit: int | None = None,
    dropped: list[str] | None = None,
    notes: list[str] | None = None,
) -> list[str] | None:
    """Labels stored in a .tflite's appended zip (TFLite metadata packs associated files this way). A member
    that unpacks to more than MAX_LABELS_BYTES is not used (said in `notes`), and no more than that is read
    whatever its header claims."""
    if not _ends_like_a_zip(model_path):
        return None
    import zipfile  # only for a model file with files packed in

    try:
        if not zipfile.is_zipfile(model_path):
            return None
        with zipfile.ZipFile(model_path) as archive:
            members = [m for m in archive.infolist() if m.filename.lower().endswith(".txt")]
            members = [m for m in members if "label" in m.filename.lower()] or members
            if not members:
                return None
            member = members[0]
            data = b""
            if member.file_size <= MAX_LABELS_BYTES:
                with archive.open(member) as handle:
                    data = handle.read(MAX_LABELS_BYTES + 1)
            if member.file_size > MAX_LABELS_BYTES or len(data) > MAX_LABELS_BYTES:
                if notes is not None:
                    notes.append(
                        f"the labels embedded in the model ({member.filename}) unpack to over "
                        f"{MAX_LABELS_BYTES // 2**20} MB: not used"
                    )
                return None
            return parse_labels(decode_text(data), limit, dropped) or None
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError):
        return None


@lru_cache(maxsize=2)
def imagenet_labels() -> tuple[str, ...]:
    """The 1001 ImageNet labels, `background` first (package data)."""
    text = read_text("imagenet_labels.txt")
    return tuple(parse_labels(text))


@lru_cache(maxsize=1)
def imagenet_wnids() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in sorted order: wnid k is class k (1000) or k + 1 (1001)."""
    text = read_text("imagenet_wnids.txt")
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
    """(labels, where they came from): find_labels() without its warnings."""
    found = find_labels(model_path, classes, labels_file, catalog_labels)
    return found.labels, found.source


def find_labels(
    model_path: str | Path, classes: int, labels_file: str | None = None, catalog_labels: str | None = None
) -> ModelLabels:
    """The labels a model's scores are named with, where they came from, and warnings to show.

    Order: --labels FILE, labels embedded in the .tflite, the catalog's, then ImageNet when the output
    has 1000 or 1001 classes. Otherwise None (labels are the class index). Indexed labels past the model's
    class count (one more is kept, for a leading `background`) are dropped with a warning.
    """
    limit = classes + 1 if classes and classes > 0 else None
    dropped: list[str] = []
    notes: list[str] = []
    if labels_file:
        labels, source = read_labels(labels_file, limit, dropped), str(labels_file)
    elif (found := embedded_labels(model_path, limit, dropped, notes)) is not None:
        labels, source = found, "embedded"
    elif catalog_labels and catalog_labels != "imagenet" and Path(catalog_labels).is_file():
        labels, source = read_labels(catalog_labels, limit, dropped), catalog_labels
    elif catalog_labels == "imagenet" or classes in (1000, 1001):
        labels, source = list(imagenet_labels()), "imagenet"
    else:  # said, so that labels lost from a damaged file do not pass unnoticed
        notes.append(
            f"no labels for this model's {classes} classes (none given, none packed in the file): results "
            "show class indices; give --labels FILE"
        )
        return ModelLabels(None, "none", tuple(notes))
    if dropped:
        shown = ", ".join(dropped[:3]) + (", ..." if len(dropped) > 3 else "")
        notes.append(f"the labels ({source}) go past the model's {classes} classes ({shown}): left out")
    return ModelLabels(fit_to_classes(labels, classes), source, tuple(notes))
