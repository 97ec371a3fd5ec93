"""`edgenet learn`: your own classes from photos, as one .tflite (extractor, head, labels). Parse, hand over
to edgenet.learn, report. Imports only typer at module level: the command line imports it at every start."""

from __future__ import annotations

import json
import os
from enum import Enum

import typer

from edgenet.choices import DoctorFormat
from edgenet.cli.common import handles_errors, text_argument


class Head(str, Enum):
    """The head fitted on the embeddings."""

    auto = "auto"
    logistic = "logistic"
    imprinting = "imprinting"


@handles_errors
def learn(
    folder: str = text_argument(..., "DIR", "A folder with one sub-folder of photos per class."),
    output: str = typer.Option(
        ...,
        "--output",
        "-o",
        metavar="FILE.tflite",
        help="The .tflite to write; an Edge TPU twin (NAME_edgetpu.tflite) goes next to it.",
    ),
    extractor: str | None = typer.Option(
        None,
        "--extractor",
        metavar="NAME|FILE",
        help="Embedding extractor: a catalog name (default v1-embedding) or a .tflite path.",
    ),
    head: Head = typer.Option(Head.auto, "--head", help="auto: the better held-out accuracy."),
    roi: str | None = typer.Option(
        None,
        "--roi",
        metavar="[NAME=]x,y,w,h",
        help="Crop each photo to x,y,w,h (pixels or fractions) first, as live frames will be (classify's "
        "--roi value works as it is).",
    ),
    threads: int | None = typer.Option(
        None, "--threads", "-t", min=1, max=64, metavar="N", help="Extractor threads."
    ),
    fmt: DoctorFormat = typer.Option(
        DoctorFormat.text, "--format", "-f", help="The report (json: on stdout)."
    ),
):
    """Learn your own classes from photos: one .tflite (extractor, head, labels) for classify, eval, bench."""
    # One BLAS thread for the head's small matrix products: OpenBLAS's default threads made them many times
    # slower on a busy 2-core box (a Pi running a classify service is one). Read when numpy loads, which
    # nothing in the command line does before this point.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    raise typer.Exit(_learn(folder, output, extractor, head, roi, threads, fmt))


def _learn(folder, output, extractor, head, roi, threads, fmt) -> int:
    from edgenet.console import say, warn
    from edgenet.learn import learn as run
    from edgenet.roi import parse_region

    region = parse_region(roi.split("=", 1)[1] if roi and "=" in roi else roi) if roi else None
    report = run(
        folder,
        output,
        extractor=extractor,
        head=head.value,
        region=region,
        threads=threads,
        on_skip=lambda path, reason: warn(f"skipped {path}: {reason}"),
    )
    for line in summary(report):
        say(line)
    for note in report.notes:
        warn(note)
    if fmt == DoctorFormat.json:
        print(json.dumps(report.to_dict()), flush=True)
    return 1 if report.skipped else 0


def summary(report) -> list[str]:
    """The human report: classes, held-out accuracy of each head, what was written and how long it took."""
    chosen = report.held_out[report.head]
    used = sum(report.photos)
    classes = ", ".join(f"{name} {count}" for name, count in zip(report.classes, report.photos, strict=True))
    accuracies = ", ".join(f"{kind} {result.accuracy:.2f}" for kind, result in report.held_out.items())
    why = "the better held-out accuracy" if report.head_choice == "auto" else "--head"
    per_class = ", ".join(
        f"{name} {value:.2f}" for name, value in zip(report.classes, chosen.per_class, strict=True)
    )
    seconds = report.seconds
    written = report.output + (f" and {report.edgetpu_output} (Edge TPU)" if report.edgetpu_output else "")
    lines = [
        f"learned {len(report.classes)} classes from {used} photos ({classes}) with {report.extractor}"
        + (f"; {len(report.skipped)} skipped" if report.skipped else ""),
        f"held-out accuracy ({chosen.folds}-fold cross-validation): {accuracies}; "
        f"head: {report.head} ({why})",
        f"  per class: {per_class}",
        f"wrote {written} in {sum(seconds.values()):.1f} s (embeddings {seconds['embeddings']:.1f} s, "
        f"heads {seconds['heads']:.1f} s, write {seconds['write']:.1f} s)",
    ]
    return lines
