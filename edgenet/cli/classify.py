"""`edgenet classify`: options into a Job, the Job to the run layer."""

from __future__ import annotations

import typer

from edgenet.choices import Delegate, RecordFormat, Resize
from edgenet.cli.common import (
    INPUT,
    OUTPUT,
    STREAM,
    UNATTENDED,
    delegate_lib_option,
    delegate_option,
    delegate_options_option,
    device_option,
    handles_errors,
    input_range_option,
    labels_option,
    model_option,
    parse_options,
    parse_range,
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
    inputs: list[str] = typer.Argument(
        None, metavar="PATH...", help="Image files, folders (recursive) or globs."
    ),
    model: str | None = model_option(),
    labels: str | None = labels_option(),
    threads: int | None = threads_option(),
    delegate: Delegate = delegate_option(),
    device: str = device_option(),
    delegate_lib: str | None = delegate_lib_option(),
    delegate_option: list[str] | None = delegate_options_option(),
    resize: Resize = resize_option(),
    input_range: str | None = input_range_option(),
    fast_decode: bool = typer.Option(
        False,
        "--fast-decode",
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
    fmt: RecordFormat = typer.Option(
        RecordFormat.table, "--format", "-f", help="Records as.", rich_help_panel=OUTPUT
    ),
    output: str | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Append records to this file.", rich_help_panel=OUTPUT
    ),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar or summary.", rich_help_panel=OUTPUT
    ),
    camera: str | None = typer.Option(
        None,
        "--camera",
        metavar="DEV",
        help="Live camera: 0, /dev/videoN, picamera2[:N], rtsp://...",
        rich_help_panel=STREAM,
    ),
    video: list[str] | None = typer.Option(
        None,
        "--video",
        metavar="FILE",
        help="Video file (or folder of them): every frame.",
        rich_help_panel=STREAM,
    ),
    width: int | None = typer.Option(
        None, "--width", min=1, metavar="PX", help="Camera capture width.", rich_help_panel=STREAM
    ),
    height: int | None = typer.Option(
        None, "--height", min=1, metavar="PX", help="Camera capture height.", rich_help_panel=STREAM
    ),
    fps: float | None = typer.Option(
        None, "--fps", min=0.1, help="Camera frame rate to ask for.", rich_help_panel=STREAM
    ),
    max_frames: int | None = typer.Option(
        None, "--max-frames", min=1, metavar="N", help="Stop after N frame records.", rich_help_panel=STREAM
    ),
    duration: float | None = typer.Option(
        None, "--duration", metavar="S", help="Stop after S seconds of streaming.", rich_help_panel=STREAM
    ),
    every: int = typer.Option(
        1, "--every", min=1, metavar="N", help="Every Nth frame of a video or camera.", rich_help_panel=STREAM
    ),
    reconnect: int = typer.Option(
        5,
        "--reconnect",
        min=0,
        metavar="N",
        help="Reopen a lost camera up to N times.",
        rich_help_panel=STREAM,
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        metavar="FILE",
        help="Incremental runs: only images not in this state file; locked against overlapping runs.",
        rich_help_panel=UNATTENDED,
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for a running edgenet instead of exiting.", rich_help_panel=UNATTENDED
    ),
    prom_textfile: str | None = typer.Option(
        None,
        "--prom-textfile",
        metavar="FILE",
        help="Prometheus metrics for node_exporter's textfile collector.",
        rich_help_panel=UNATTENDED,
    ),
    prom_every: float = typer.Option(
        15.0,
        "--prom-every",
        min=0.0,
        metavar="S",
        help="Rewrite the textfile every S s.",
        rich_help_panel=UNATTENDED,
    ),
    mqtt: str | None = typer.Option(
        None,
        "--mqtt",
        metavar="HOST[:PORT]",
        help="Publish records to this MQTT broker.",
        rich_help_panel=UNATTENDED,
    ),
    mqtt_topic: str | None = typer.Option(
        None,
        "--mqtt-topic",
        metavar="TOPIC",
        help="Base topic (edgenet/<hostname>).",
        rich_help_panel=UNATTENDED,
    ),
    mqtt_user: str | None = typer.Option(
        None, "--mqtt-user", metavar="USER", help="MQTT username.", rich_help_panel=UNATTENDED
    ),
    mqtt_password: str | None = typer.Option(
        None,
        "--mqtt-password",
        envvar="EDGENET_MQTT_PASSWORD",
        metavar="PASSWORD",
        help="MQTT password (or EDGENET_MQTT_PASSWORD).",
        rich_help_panel=UNATTENDED,
    ),
    mqtt_tls: bool = typer.Option(
        False, "--mqtt-tls", help="Connect with TLS (system CA certificates).", rich_help_panel=UNATTENDED
    ),
    mqtt_ca: str | None = typer.Option(
        None, "--mqtt-ca", metavar="FILE", help="CA certificate file for TLS.", rich_help_panel=UNATTENDED
    ),
    mqtt_every: int = typer.Option(
        1, "--mqtt-every", min=1, metavar="N", help="Publish every Nth record.", rich_help_panel=UNATTENDED
    ),
    mqtt_on_change: bool = typer.Option(
        False, "--mqtt-on-change", help="Publish when the top-1 changes.", rich_help_panel=UNATTENDED
    ),
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
    from edgenet.model import ClassifyOptions, ModelRequest
    from edgenet.run.job import InputOptions, Job, MqttOptions, OutputOptions, UnattendedOptions, run_job

    job = Job(
        model=ModelRequest(
            model=model,
            labels=labels,
            threads=threads,
            delegate=delegate,
            device=device,
            delegate_lib=delegate_lib,
            delegate_options=parse_options(delegate_option),
            input_range=parse_range(input_range),
        ),
        task=ClassifyOptions(resize=resize, top_k=top_k, threshold=threshold),
        inputs=InputOptions(
            paths=tuple(inputs or ()),
            camera=camera,
            videos=tuple(video or ()),
            width=width,
            height=height,
            fps=fps,
            every=every,
            reconnect=reconnect,
            max_frames=max_frames,
            duration=duration,
            fast_decode=fast_decode,
        ),
        output=OutputOptions(format=fmt, output=output, quiet=quiet),
        unattended=UnattendedOptions(
            state=state,
            wait=wait,
            prom_textfile=prom_textfile,
            prom_every=prom_every,
            mqtt=None
            if mqtt is None
            else MqttOptions(
                mqtt, mqtt_topic, mqtt_user, mqtt_password, mqtt_tls, mqtt_ca, mqtt_every, mqtt_on_change
            ),
        ),
        keep=keep_options(
            annotate, save, save_when, save_max_mb, serve, serve_fps, serve_token, serve_linger
        ),
    )
    raise typer.Exit(run_job(job))
