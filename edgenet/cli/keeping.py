"""The options of seeing and keeping (annotated output, evidence), for every command that
runs frames (classify, detect): one factory per option, and `keep_options` to make the run's KeepOptions.

    annotate: str | None = annotate_option(), save: str | None = save_option(), ...
    job = Job(..., keep=keep_options(annotate, save, save_when, save_max_mb))
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


def keep_options(
    annotate: str | None,
    save: str | None,
    save_when: list[str] | None,
    save_max_mb: float | None,
):
    """The run's edgenet.run.keep.KeepOptions; a malformed --save-when is a usage error (exit 2)."""
    from edgenet.run.keep import KeepOptions
    from edgenet.sinks.conditions import parse_condition

    return KeepOptions(
        annotate=annotate,
        save_dir=save,
        save_when=tuple(parse_condition(text) for text in save_when or ()),
        save_max_mb=save_max_mb,
    )
