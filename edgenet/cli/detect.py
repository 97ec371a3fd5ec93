"""`edgenet detect`: SSD object detection, optionally with each detection classified by a second model."""

from __future__ import annotations

import typer

from edgenet.choices import Delegate, RecordFormat
from edgenet.cli import run_options as shared
from edgenet.cli.common import (
    MODEL,
    OUTPUT,
    delegate_lib_option,
    delegate_option,
    delegate_options_option,
    device_option,
    for_stdout,
    handles_errors,
    input_range_option,
    labels_option,
    model_option,
    model_request,
    threads_option,
)
from edgenet.cli.keeping import (
    annotate_option,
    keep_options,
    save_max_mb_option,
    save_option,
    save_when_option,
    serve_fps_option,
    serve_linger_option,
    serve_option,
    serve_token_option,
)


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(name.strip() for name in (text or "").split(",") if name.strip())


def _task(request, roi, threshold, classes, max_detections, classify_crops, crop_classes, top_k):
    """The detect task's options; the crops' classifier runs where the detector runs."""
    from dataclasses import replace

    from edgenet.errors import UsageError
    from edgenet.tasks.detection import DetectOptions

    crops = None
    if crop_classes and not classify_crops:
        raise UsageError("--crop-classes names the detections to classify: give --classify-crops MODEL too")
    if classify_crops:
        crops = replace(
            request,
            model=classify_crops,
            labels=None,
            input_range=None,
            delegate_lib=None,
            delegate_options=(),
        )
    return DetectOptions(
        regions=shared.regions_from(roi),
        threshold=threshold,
        classes=_names(classes),
        max_detections=max_detections,
        crops=crops,
        crop_classes=_names(crop_classes),
        crop_top_k=top_k,
    )


@handles_errors
def detect(
    inputs: list[str] = shared.inputs_argument(),
    model: str | None = model_option(
        "Detector: zoo name (default ssd-v1; ssd-v2-fpnlite, ...) or a .tflite path."
    ),
    labels: str | None = labels_option(),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    device: str = device_option(),
    delegate_lib: str | None = delegate_lib_option(),
    delegate_option: list[str] | None = delegate_options_option(),
    input_range: str | None = input_range_option(),
    max_pixels: int | None = shared.max_pixels_option(),
    roi: list[str] | None = shared.roi_option(),
    confirm: int = shared.confirm_option(),
    threshold: float | None = typer.Option(
        None,
        "--threshold",
        min=0.0,
        max=1.0,
        metavar="T",
        help="Keep detections scoring T or more (default 0.5; ssd-v2-fpnlite 0.3, its scores run lower).",
        show_default=False,
        rich_help_panel=OUTPUT,
    ),
    classes: str | None = typer.Option(
        None,
        "--classes",
        metavar="NAMES",
        help="Only these classes: person,bird (names or indices).",
        rich_help_panel=OUTPUT,
    ),
    max_detections: int | None = typer.Option(
        None,
        "--max-detections",
        min=1,
        metavar="N",
        help="At most N detections per frame, best first.",
        rich_help_panel=OUTPUT,
    ),
    classify_crops: str | None = typer.Option(
        None,
        "--classify-crops",
        metavar="NAME|FILE",
        help="Classify each detection with this classifier.",
        rich_help_panel=MODEL,
    ),
    crop_classes: str | None = typer.Option(
        None,
        "--crop-classes",
        metavar="NAMES",
        help="Classify only detections of these classes.",
        rich_help_panel=MODEL,
    ),
    top_k: int = typer.Option(
        3,
        "--top-k",
        "-k",
        min=1,
        metavar="K",
        help="Classes per classified detection.",
        rich_help_panel=OUTPUT,
    ),
    fmt: RecordFormat | None = shared.format_option(),
    output: str | None = shared.output_option(),
    quiet: bool = shared.quiet_option(),
    camera: str | None = shared.camera_option(),
    video: list[str] | None = shared.video_option(),
    width: int | None = shared.width_option(),
    height: int | None = shared.height_option(),
    fps: float | None = shared.fps_option(),
    max_frames: int | None = shared.max_frames_option(),
    duration: float | None = shared.duration_option(),
    every: int = shared.every_option(),
    reconnect: int = shared.reconnect_option(),
    interval: float | None = shared.interval_option(),
    state: str | None = shared.state_option(),
    watch: bool = shared.watch_option(),
    settle: float = shared.settle_option(),
    wait: bool = shared.wait_option(),
    prom_textfile: str | None = shared.prom_textfile_option(),
    prom_every: float = shared.prom_every_option(),
    mqtt: str | None = shared.mqtt_option(),
    mqtt_topic: str | None = shared.mqtt_topic_option(),
    mqtt_user: str | None = shared.mqtt_user_option(),
    mqtt_password: str | None = shared.mqtt_password_option(),
    mqtt_tls: bool = shared.mqtt_tls_option(),
    mqtt_ca: str | None = shared.mqtt_ca_option(),
    mqtt_every: int = shared.mqtt_every_option(),
    ha_discovery: str = shared.ha_discovery_option(),
    mqtt_on_change: bool = shared.mqtt_on_change_option("the set of detected labels"),
    annotate: str | None = annotate_option(),
    save: str | None = save_option(),
    save_when: list[str] | None = save_when_option(),
    save_max_mb: float | None = save_max_mb_option(),
    serve: str | None = serve_option(),
    serve_fps: float = serve_fps_option(),
    serve_token: str | None = serve_token_option(),
    serve_linger: float = serve_linger_option(),
):
    """Detect objects (SSD) in images, video files or a live camera; one record per image or frame.

    Boxes are in pixels of the original frame. jsonl/csv go to stdout (or --output); tables, live views and
    summaries to stderr.
    """
    from edgenet.run.job import Job, OutputOptions, run_job

    request = model_request(
        model, labels, threads, delegate, device, delegate_lib, delegate_option, input_range
    )
    job = Job(
        model=request,
        task=_task(request, roi, threshold, classes, max_detections, classify_crops, crop_classes, top_k),
        inputs=shared.inputs_from(
            inputs,
            camera,
            video,
            width,
            height,
            fps,
            every,
            reconnect,
            max_frames,
            duration,
            max_pixels=max_pixels,
            interval=interval,
            watch=watch,
            settle=settle,
        ),
        output=OutputOptions(
            format=for_stdout(fmt, RecordFormat.table, RecordFormat.jsonl, output, state),
            output=output,
            quiet=quiet,
        ),
        unattended=shared.unattended_from(
            state,
            wait,
            prom_textfile,
            prom_every,
            mqtt,
            mqtt_topic,
            mqtt_user,
            mqtt_password,
            mqtt_tls,
            mqtt_ca,
            mqtt_every,
            mqtt_on_change,
            ha_discovery=ha_discovery,
        ),  # fmt: skip
        confirm=confirm,
        keep=keep_options(
            annotate, save, save_when, save_max_mb, serve, serve_fps, serve_token, serve_linger
        ),
        verb="detecting",
    )
    raise typer.Exit(run_job(job))
