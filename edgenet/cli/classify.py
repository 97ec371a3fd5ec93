"""`edgenet classify`: options into a Job, the Job to the run layer."""

from __future__ import annotations

import typer

from edgenet.choices import Delegate, RecordFormat, Resize
from edgenet.cli import run_options as shared
from edgenet.cli.common import (
    INPUT,
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
    resize_option,
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


@handles_errors
def classify(
    inputs: list[str] = shared.inputs_argument(),
    model: str | None = model_option(),
    labels: str | None = labels_option(),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    device: str = device_option(),
    delegate_lib: str | None = delegate_lib_option(),
    delegate_option: list[str] | None = delegate_options_option(),
    resize: Resize = resize_option(),
    input_range: str | None = input_range_option(),
    max_pixels: int | None = shared.max_pixels_option(),
    roi: list[str] | None = shared.roi_option(),
    confirm: int = shared.confirm_option(),
    fast_decode: bool = typer.Option(
        False,
        "--fast-decode",
        metavar="",
        help="Decode big JPEGs at 1/2-1/8 scale (libjpeg DCT scaling): faster, slightly different pixels.",
        rich_help_panel=INPUT,
    ),
    top_k: int = typer.Option(
        5, "--top-k", "-k", min=1, metavar="K", help="Classes per image.", rich_help_panel=OUTPUT
    ),
    threshold: float = typer.Option(
        0.0,
        "--threshold",
        min=0.0,
        max=1.0,
        metavar="T",
        help="Drop classes scoring below T.",
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
    mqtt_on_change: bool = shared.mqtt_on_change_option(),
    annotate: str | None = annotate_option(),
    save: str | None = save_option(),
    save_when: list[str] | None = save_when_option(),
    save_max_mb: float | None = save_max_mb_option(),
    serve: str | None = serve_option(),
    serve_fps: float = serve_fps_option(),
    serve_token: str | None = serve_token_option(),
    serve_linger: float = serve_linger_option(),
):
    """Classify images, video files or a live camera; one record per image or frame.

    jsonl/csv go to stdout (or --output); tables, live views and summaries to stderr.
    """
    from edgenet.run.job import Job, OutputOptions, run_job
    from edgenet.tasks.classification import ClassifyOptions

    job = Job(
        model=model_request(
            model, labels, threads, delegate, device, delegate_lib, delegate_option, input_range
        ),
        task=ClassifyOptions(
            resize=resize, top_k=top_k, threshold=threshold, regions=shared.regions_from(roi)
        ),
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
            fast_decode=fast_decode,
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
    )
    raise typer.Exit(run_job(job))
