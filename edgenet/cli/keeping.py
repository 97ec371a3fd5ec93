"""The options of seeing and keeping (annotated output, evidence, the live preview), for every command that
runs frames (classify, detect): one factory per option, and `keep_options` to make the run's KeepOptions.

    annotate: str | None = annotate_option(), save: str | None = save_option(), ...
    job = Job(..., keep=keep_options(annotate, save, save_when, save_max_mb, serve, serve_fps, serve_token,
                                     serve_linger))
"""

from __future__ import annotations

import typer

KEEP = "See and keep"


def annotate_option():
    return typer.Option(
        None,
        "--annotate",
        metavar="OUT",
        help="Draw the results on a copy of each frame: a folder gets one JPEG per image (or frame); a "
        ".mp4/.mkv/.avi name gets a video of the stream.",
        rich_help_panel=KEEP,
    )


def save_option():
    return typer.Option(
        None,
        "--save",
        metavar="DIR",
        help="Keep evidence when --save-when holds: the frame as JPEG and its record as JSON beside it.",
        rich_help_panel=KEEP,
    )


def save_when_option():
    return typer.Option(
        None,
        "--save-when",
        metavar="COND",
        help="label:NAME[>=SCORE], change, below:SCORE or every:DURATION (30s, 5m); repeat: any of them.",
        rich_help_panel=KEEP,
    )


def save_max_mb_option():
    return typer.Option(
        None,
        "--save-max-mb",
        metavar="MB",
        help="Disk quota of --save's evidence: the oldest goes first (counted across runs).",
        rich_help_panel=KEEP,
    )


def serve_option():
    return typer.Option(
        None,
        "--serve",
        metavar="[HOST:]PORT",
        help="Live preview over HTTP: page, MJPEG, /latest.json, /healthz, /metrics (host 127.0.0.1).",
        rich_help_panel=KEEP,
    )


def serve_fps_option():
    return typer.Option(
        5.0,
        "--serve-fps",
        min=0.1,
        max=60.0,
        metavar="FPS",
        help="Preview frame rate cap.",
        rich_help_panel=KEEP,
    )


def serve_token_option():
    return typer.Option(
        None,
        "--serve-token",
        envvar="EDGENET_SERVE_TOKEN",
        metavar="TOKEN",
        help="Every preview request needs it: ?token= or Authorization: Bearer.",
        rich_help_panel=KEEP,
    )


def serve_linger_option():
    return typer.Option(
        0.0,
        "--serve-linger",
        min=0.0,
        metavar="S",
        help="Keep the preview up S s after the run ends (inf: until Ctrl-C).",
        rich_help_panel=KEEP,
    )


def keep_options(
    annotate: str | None,
    save: str | None,
    save_when: list[str] | None,
    save_max_mb: float | None,
    serve: str | None,
    serve_fps: float = 5.0,
    serve_token: str | None = None,
    serve_linger: float = 0.0,
):
    """The run's edgenet.run.keep.KeepOptions; a malformed --save-when is a usage error (exit 2)."""
    from edgenet.run.keep import KeepOptions

    conditions = ()
    if save_when:  # the parser only when asked for: a plain run imports nothing of --save
        from edgenet.sinks.conditions import parse_condition

        conditions = tuple(parse_condition(text) for text in save_when)
    return KeepOptions(
        annotate=annotate,
        save_dir=save,
        save_when=conditions,
        save_max_mb=save_max_mb,
        serve=serve,
        serve_fps=serve_fps,
        serve_token=serve_token or None,
        serve_linger=serve_linger,
    )
