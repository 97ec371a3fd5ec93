"""`edgenet eval`: accuracy on a labelled folder (top-1/top-5 of a classifier, COCO mAP of a detector)."""

from __future__ import annotations

import json

import typer

from edgenet.choices import Delegate, GroundTruth, ReportFormat, Resize, Task
from edgenet.cli.common import (
    AUTO_FORMAT_HELP,
    OUTPUT,
    delegate_option,
    for_stdout,
    handles_errors,
    input_range_option,
    labels_option,
    model_option,
    parse_range,
    resize_option,
    text_argument,
    threads_option,
)


@handles_errors
def evaluate(
    folder: str = text_argument(
        ...,
        "DIR",
        "classify: class = parent folder or file-name prefix. detect: images, COCO JSON or YOLO labels.",
    ),
    task: Task = typer.Option(Task.classify, "--task", help="classify: top-1/top-5; detect: COCO mAP, AP50."),
    ground_truth: GroundTruth = typer.Option(
        GroundTruth.auto, "--ground-truth", help="detect: a COCO instances JSON, YOLO labels, or either."
    ),
    model: str | None = model_option(),
    labels: str | None = labels_option(),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    resize: Resize = resize_option(),
    input_range: str | None = input_range_option(),
    fmt: ReportFormat | None = typer.Option(
        None,
        "--format",
        "-f",
        help=f"Report as {AUTO_FORMAT_HELP}.",
        rich_help_panel=OUTPUT,
        show_default=False,
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, metavar="N", help="Only the first N images."),
):
    """Accuracy on a labelled folder: top-1 / top-5 (classify) or COCO mAP and AP50 (--task detect)."""
    from edgenet.console import warn
    from edgenet.model import ModelRequest, open_model

    fmt = for_stdout(fmt, ReportFormat.table, ReportFormat.json)
    from edgenet.run.stop import StopSignals
    from edgenet.tasks.classification import ClassifyOptions
    from edgenet.tasks.detection import DetectOptions

    with StopSignals() as stop:
        request = ModelRequest(
            model=model,
            labels=labels,
            threads=threads,
            delegate=delegate,
            input_range=parse_range(input_range),
        )
        options = ClassifyOptions(resize=resize, top_k=5) if task == Task.classify else DetectOptions()
        opened = open_model(request, options)
        for message in opened.warnings:
            warn(message)
        if task == Task.detect:
            from edgenet.evaluate_detection import evaluate_detection

            report = evaluate_detection(folder, opened, ground_truth.value, limit=limit, stop=stop)
            _say_detection(report, fmt)
        else:
            from edgenet.evaluate import evaluate_folder

            report = evaluate_folder(folder, opened, limit=limit, stop=stop)
            _say_classification(report, fmt, resize)
    raise typer.Exit(1 if report["errors"] else 0)


def _say_detection(report: dict, fmt: ReportFormat) -> None:
    from edgenet.console import say

    if fmt == ReportFormat.json:
        print(json.dumps(report))
        return
    value = "-" if report["map"] is None else f"{report['map']:.1f}"
    ap50 = "-" if report["ap50"] is None else f"{report['ap50']:.1f}"
    unmatched = f"; no model class for: {', '.join(report['unmatched'])}" if report["unmatched"] else ""
    say(
        f"{report['model']}: mAP@[.5:.95] {value}  AP50 {ap50}  ({report['images']} images, "
        f"{report['objects']} "
        f"objects, {report['detections']} detections, {report['errors']} errors; {report['ground_truth']}"
        f"{unmatched})"
    )


def _say_classification(report: dict, fmt: ReportFormat, resize: Resize) -> None:
    from edgenet.console import say

    if fmt == ReportFormat.json:
        print(json.dumps(report))
        return
    unlabelled = (
        f", {report['unlabelled']} without a class name (not counted)" if report["unlabelled"] else ""
    )
    say(
        f"{report['model']}: top-1 {report['top1'] * 100:.2f}%  top-5 {report['top5'] * 100:.2f}%  "
        f"({report['images']} images, {report['errors']} errors{unlabelled}, resize {resize.value})"
    )
