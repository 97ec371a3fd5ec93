"""What every command shares: the one-line error handling, the option definitions (grouped in help panels)
and small parsers for option values. Nothing below the CLI imports this package."""

from __future__ import annotations

import functools
import math
import os
import sys

import typer

from edgenet.choices import Delegate, Resize
from edgenet.console import error
from edgenet.errors import EdgenetError, UsageError

MODEL, INPUT, STREAM, OUTPUT, UNATTENDED = "Model", "Input", "Stream", "Output", "Unattended"


def handles_errors(command):
    """Every EdgenetError becomes its one-line message and exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgenetError as problem:
            error(str(problem))
            raise typer.Exit(problem.exit_code) from None
        except BrokenPipeError:
            # stdout closed early (e.g. `| head`): nothing more to say, and Python must not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None

    return wrapper


def parse_range(text: str | None) -> tuple[float, float] | None:
    """--input-range LO,HI: two finite numbers, LO below HI."""
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--input-range takes LO,HI (e.g. -1,1 or 0,1), not {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UsageError(f"--input-range takes finite numbers (e.g. -1,1 or 0,1), not {text!r}")
    if not lo < hi:
        raise UsageError(f"--input-range: LO must be below HI, got {text!r}")
    return (lo, hi)


def parse_options(pairs: list[str] | None, option: str = "--delegate-option") -> tuple[tuple[str, str], ...]:
    """KEY=VALUE pairs, as LiteRT's external_delegate_options take them."""
    found = []
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} takes KEY=VALUE (e.g. device=usb:0), not {pair!r}")
        found.append((key.strip(), value.strip()))
    return tuple(found)


@functools.cache
def _words_type():
    """A plain text type whose help shows the argument's own metavar only (Typer prints a `<str>` column for
    text arguments otherwise); None where this Typer has no click types to build it from."""
    try:
        from typer._click.types import StringParamType  # Typer 0.2x vendors click
    except ImportError:
        try:
            from click.types import StringParamType  # older Typer uses click itself
        except ImportError:
            return None

    class Words(StringParamType):  # one instance serves every argument (it holds no state)
        def get_metavar(self, *args, **kwargs):
            return ""

    return Words()


def text_argument(default, metavar: str, help_text: str | None = None):
    """A positional argument of text (a path, a name); `metavar` ends in `...` when several are taken."""
    words = _words_type()
    typed = {"click_type": words} if words is not None else {}
    return typer.Argument(default, metavar=metavar, help=help_text, show_default=False, **typed)


def model_option(help_text: str = "Zoo name (edgenet models list) or path to a .tflite."):
    return typer.Option(None, "--model", "-m", metavar="NAME|FILE", help=help_text, rich_help_panel=MODEL)


def labels_option():
    return typer.Option(
        None,
        "--labels",
        metavar="FILE",
        help="Label file for a .tflite given by path.",
        rich_help_panel=MODEL,
    )


def threads_option():
    return typer.Option(
        None,
        "--threads",
        "-t",
        min=1,
        max=64,
        metavar="N",
        help="Inference threads (default: usable cores minus one, 1 to 4).",
        rich_help_panel=MODEL,
    )


def delegate_option():
    return typer.Option(Delegate.auto, "--delegate", help="Where to run the model.", rich_help_panel=MODEL)


def device_option():
    return typer.Option(
        "",
        "--device",
        metavar="DEV",
        help="Edge TPU: '' (any), ':N', 'usb', 'usb:N', 'pci', 'pci:N'.",
        rich_help_panel=MODEL,
    )


def delegate_lib_option():
    return typer.Option(
        None,
        "--delegate-lib",
        metavar="LIB.so",
        help="Load this TFLite external delegate.",
        rich_help_panel=MODEL,
    )


def delegate_options_option():
    return typer.Option(
        None,
        "--delegate-option",
        metavar="KEY=VALUE",
        help="An option for the external delegate (repeatable), as LiteRT's external_delegate_options.",
        rich_help_panel=MODEL,
    )


def resize_option():
    return typer.Option(
        Resize.crop,
        "--resize",
        help="crop: shorter side + centre crop; stretch: the whole frame.",
        rich_help_panel=INPUT,
    )


def input_range_option():
    return typer.Option(
        None, "--input-range", metavar="LO,HI", help="Override a float input's range.", rich_help_panel=INPUT
    )


def model_request(model, labels, threads, delegate, device, delegate_lib, delegate_option, input_range):
    """The Model panel's options as the model layer's request."""
    from edgenet.model import ModelRequest

    return ModelRequest(
        model=model,
        labels=labels,
        threads=threads,
        delegate=delegate,
        device=device,
        delegate_lib=delegate_lib,
        delegate_options=parse_options(delegate_option),
        input_range=parse_range(input_range),
    )


AUTO_FORMAT_HELP = "(default: a table on a terminal, data when stdout is a pipe or a file)"
RUN_FORMAT_HELP = "(default: a table on a terminal; data on a pipe, with --output or with --state)"


def for_stdout(fmt, human, data, output: str | None = None, state: str | None = None):
    """The format asked for, else the convention of gh and ls: people on a terminal, data on a pipe or in
    a file (`edgenet classify cat.jpg | grep Egyptian` finds the record). With a --state, data: a table is
    written at the end, and the state marks images done as their records are written."""
    if fmt is not None:
        return fmt
    if output or state:
        return data
    try:
        return human if sys.stdout.isatty() else data
    except (AttributeError, ValueError):
        return data
