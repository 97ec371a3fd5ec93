"""`edgenet eval`: accuracy on a labelled folder."""

from __future__ import annotations

import json

import typer

from edgenet.choices import Delegate, ReportFormat, Resize
from edgenet.cli.common import (
    OUTPUT,
    delegate_option,
    handles_errors,
    input_range_option,
    labels_option,
    model_option,
    parse_range,
    resize_option,
    threads_option,
)


@handles_errors
def evaluate(
    folder: str = typer.Argument(
        ..., metavar="DIR", help="ImageNet-style folder: class = parent folder or file-name prefix."
    ),
    model: str | None = model_option(),
    labels: str | None = labels_option(),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    resize: Resize = resize_option(),
    input_range: str | None = input_range_option(),
    fmt: ReportFormat = typer.Option(
        ReportFormat.table, "--format", "-f", help="Report as.", rich_help_panel=OUTPUT
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, metavar="N", help="Only the first N images."),
):
    """Top-1 / top-5 accuracy on a labelled folder."""
    from edgenet.console import say, warn
    from edgenet.evaluate import evaluate_folder
    from edgenet.model import ClassifyOptions, ModelRequest, open_model
    from edgenet.run.stop import StopSignals

    with StopSignals() as stop:
        request = ModelRequest(
            model=model,
            labels=labels,
            threads=threads,
            delegate=delegate,
            input_range=parse_range(input_range),
        )
        opened = open_model(request, ClassifyOptions(resize=resize, top_k=5))
        for message in opened.warnings:
            warn(message)
        report = evaluate_folder(folder, opened, limit=limit, stop=stop)
    if fmt == ReportFormat.json:
        print(json.dumps(report))
    else:
        unlabelled = (
            f", {report['unlabelled']} without a class name (not counted)" if report["unlabelled"] else ""
        )
        say(
            f"{report['model']}: top-1 {report['top1'] * 100:.2f}%  top-5 {report['top5'] * 100:.2f}%  "
            f"({report['images']} images, {report['errors']} errors{unlabelled}, resize {resize.value})"
        )
    raise typer.Exit(1 if report["errors"] else 0)
