"""The closed sets of values users choose from, as str enums: Typer lists them in --help and refuses others,
and the library validates them once, at its edge, with `choose`."""

from __future__ import annotations

from enum import Enum

from edgenet.errors import UsageError


class Delegate(str, Enum):
    """Where to run a model: the user's request (the placement decides what actually runs)."""

    auto = "auto"
    cpu = "cpu"
    xnnpack = "xnnpack"
    edgetpu = "edgetpu"


class Resize(str, Enum):
    """How a frame becomes the classifier's input: shorter side + centre crop, or the whole frame."""

    crop = "crop"
    stretch = "stretch"


class RecordFormat(str, Enum):
    """Per-frame records: a table for people, JSON Lines or CSV for programs."""

    table = "table"
    jsonl = "jsonl"
    csv = "csv"


class BenchFormat(str, Enum):
    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


class ReportFormat(str, Enum):
    """One report (eval, devices, models): a table for people or JSON."""

    table = "table"
    json = "json"


class Task(str, Enum):
    """What a model does with a frame."""

    classify = "classify"
    detect = "detect"


class GroundTruth(str, Enum):
    """Where detection ground truth comes from: a COCO instances JSON, YOLO labels, or whichever is there."""

    auto = "auto"
    coco = "coco"
    yolo = "yolo"


class DoctorFormat(str, Enum):
    """doctor's checks: a line each for people, or JSON."""

    text = "text"
    json = "json"


class BenchMode(str, Enum):
    invoke = "invoke"
    e2e = "e2e"


def choose(kind: type[Enum], value, option: str):
    """`value` as a member of `kind` (a member or its text), else a usage error naming the choices."""
    if isinstance(value, kind):
        return value
    try:
        return kind(str(value))
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise UsageError(f"unknown {option} {value!r}; choose one of {names}") from None
