"""The options every frame-running command (classify, detect) shares, defined once: inputs and streams,
output, unattended runs; and how they become the run layer's configs."""

from __future__ import annotations

import typer

from edgenet.cli.common import INPUT, OUTPUT, RUN_FORMAT_HELP, STREAM, UNATTENDED, text_argument


def max_pixels_option():
    return typer.Option(
        None,
        "--max-pixels",
        min=0,
        metavar="N",
        help="Refuse images larger than N pixels, from their header (default 200000000; 0: no cap).",
        rich_help_panel=INPUT,
    )


def watch_option():
    return typer.Option(
        False,
        "--watch",
        help="Go on with each new image in the folders as it finishes arriving, until stopped.",
        rich_help_panel=UNATTENDED,
    )


def settle_option():
    return typer.Option(
        1.0,
        "--settle",
        min=0.0,
        metavar="S",
        help="--watch: a file unchanged for S seconds has finished arriving.",
        rich_help_panel=UNATTENDED,
    )


def roi_option():
    return typer.Option(
        None,
        "--roi",
        metavar="NAME=x,y,w,h",
        help="Watch a region (pixels or fractions of the frame), repeatable: a result, a state for each.",
        rich_help_panel=INPUT,
    )


def confirm_option():
    return typer.Option(
        3,
        "--confirm",
        min=1,
        metavar="N",
        help="A region's state changes after N agreeing results.",
        rich_help_panel=OUTPUT,
    )


def interval_option():
    return typer.Option(
        None,
        "--interval",
        min=0.001,
        metavar="S",
        help="A camera snapshot every S seconds (sleeps between).",
        rich_help_panel=STREAM,
    )


def ha_discovery_option():
    return typer.Option(
        "homeassistant",
        "--ha-discovery",
        metavar="PREFIX",
        help="With --roi and --mqtt: Home Assistant discovery under PREFIX ('off': none).",
        rich_help_panel=UNATTENDED,
    )


def regions_from(roi: list[str] | None) -> tuple:
    """--roi NAME=x,y,w,h ... as edgenet.tasks.regions.NamedRegion (the parser imported only when asked)."""
    if not roi:
        return ()
    from edgenet.tasks.regions import parse_named_regions

    return parse_named_regions(roi)


def inputs_argument():
    return text_argument(None, "PATH...", "Image files, folders (recursive), globs or videos.")


def format_option():
    return typer.Option(
        None,
        "--format",
        "-f",
        help=f"Records as {RUN_FORMAT_HELP}.",
        rich_help_panel=OUTPUT,
        show_default=False,
    )


def output_option():
    return typer.Option(
        None, "--output", "-o", metavar="FILE", help="Append records to this file.", rich_help_panel=OUTPUT
    )


def quiet_option():
    return typer.Option(False, "--quiet", "-q", help="No progress bar or summary.", rich_help_panel=OUTPUT)


def camera_option():
    return typer.Option(
        None,
        "--camera",
        metavar="DEV",
        help="Live camera: 0, /dev/videoN, picamera2[:N], rtsp://...",
        rich_help_panel=STREAM,
    )


def video_option():
    return typer.Option(
        None,
        "--video",
        metavar="FILE",
        help="Video file (or folder of them): every frame.",
        rich_help_panel=STREAM,
    )


def width_option():
    return typer.Option(
        None, "--width", min=1, metavar="PX", help="Camera capture width.", rich_help_panel=STREAM
    )


def height_option():
    return typer.Option(
        None, "--height", min=1, metavar="PX", help="Camera capture height.", rich_help_panel=STREAM
    )


def fps_option():
    return typer.Option(
        None, "--fps", min=0.1, metavar="FPS", help="Camera frame rate to ask for.", rich_help_panel=STREAM
    )


def max_frames_option():
    return typer.Option(
        None, "--max-frames", min=1, metavar="N", help="Stop after N frame records.", rich_help_panel=STREAM
    )


def duration_option():
    return typer.Option(
        None, "--duration", metavar="S", help="Stop after S seconds of streaming.", rich_help_panel=STREAM
    )


def every_option():
    return typer.Option(
        1, "--every", min=1, metavar="N", help="Every Nth frame of a video or camera.", rich_help_panel=STREAM
    )


def reconnect_option():
    return typer.Option(
        5,
        "--reconnect",
        min=0,
        metavar="N",
        help="Reopen a lost camera up to N times.",
        rich_help_panel=STREAM,
    )


def state_option():
    return typer.Option(
        None,
        "--state",
        metavar="FILE",
        help="Incremental runs: only images not in this state file; locked against overlapping runs.",
        rich_help_panel=UNATTENDED,
    )


def wait_option():
    return typer.Option(
        False,
        "--wait",
        metavar="",
        help="Wait for a running edgenet instead of exiting.",
        rich_help_panel=UNATTENDED,
    )


def prom_textfile_option():
    return typer.Option(
        None,
        "--prom-textfile",
        metavar="FILE",
        help="Prometheus metrics for node_exporter's textfile collector.",
        rich_help_panel=UNATTENDED,
    )


def prom_every_option():
    return typer.Option(
        15.0,
        "--prom-every",
        min=0.0,
        metavar="S",
        help="Rewrite the textfile every S s.",
        rich_help_panel=UNATTENDED,
    )


def mqtt_option():
    return typer.Option(
        None,
        "--mqtt",
        metavar="HOST[:PORT]",
        help="Publish records to this MQTT broker.",
        rich_help_panel=UNATTENDED,
    )


def mqtt_topic_option():
    return typer.Option(
        None,
        "--mqtt-topic",
        metavar="TOPIC",
        help="Base topic (edgenet/<hostname>).",
        rich_help_panel=UNATTENDED,
    )


def mqtt_user_option():
    return typer.Option(
        None, "--mqtt-user", metavar="USER", help="MQTT username.", rich_help_panel=UNATTENDED
    )


def mqtt_password_option():
    return typer.Option(
        None,
        "--mqtt-password",
        envvar="EDGENET_MQTT_PASSWORD",
        metavar="PASSWORD",
        help="MQTT password (or EDGENET_MQTT_PASSWORD).",
        rich_help_panel=UNATTENDED,
    )


def mqtt_tls_option():
    return typer.Option(
        False,
        "--mqtt-tls",
        metavar="",
        help="Connect with TLS (system CA certificates).",
        rich_help_panel=UNATTENDED,
    )


def mqtt_ca_option():
    return typer.Option(
        None, "--mqtt-ca", metavar="FILE", help="CA certificate file for TLS.", rich_help_panel=UNATTENDED
    )


def mqtt_every_option():
    return typer.Option(
        1, "--mqtt-every", min=1, metavar="N", help="Publish every Nth record.", rich_help_panel=UNATTENDED
    )


def mqtt_on_change_option(what: str = "the top-1"):
    return typer.Option(
        False,
        "--mqtt-on-change",
        metavar="",
        help=f"Publish when {what} changes.",
        rich_help_panel=UNATTENDED,
    )


def inputs_from(inputs, camera, video, width, height, fps, every, reconnect, max_frames, duration, **extra):
    from edgenet.run.job import InputOptions

    return InputOptions(
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
        **extra,
    )


def unattended_from(
    state, wait, prom_textfile, prom_every, mqtt, *mqtt_options, ha_discovery="homeassistant"
):
    """The Unattended panel's options; `mqtt_options`: topic, user, password, tls, ca, every, on_change."""
    from edgenet.run.job import MqttOptions, UnattendedOptions

    broker = None
    if mqtt is not None:
        prefix = (
            "" if ha_discovery.strip().lower() in ("", "off", "none") else ha_discovery.strip().strip("/")
        )
        broker = MqttOptions(mqtt, *mqtt_options, discovery_prefix=prefix)
    return UnattendedOptions(
        state=state, wait=wait, prom_textfile=prom_textfile, prom_every=prom_every, mqtt=broker
    )
