"""The command line: one file per command group, each parsing options into a config for the layers below.

Human output (tables, progress, warnings, summaries) goes to stderr; data (jsonl, csv, json) to stdout or
--output. Errors are one line on stderr and an exit code (edgenet.errors), Typer's own refusals of bad
option values included.
"""

from __future__ import annotations

import os
import sys

import typer

from edgenet.cli.bench import bench
from edgenet.cli.choose import choose
from edgenet.cli.classify import classify
from edgenet.cli.detect import detect
from edgenet.cli.evaluate import evaluate
from edgenet.cli.learn import learn
from edgenet.cli.models import (
    models_build,
    models_info,
    models_list,
    models_path,
    models_pull,
    models_verify,
    samples,
)
from edgenet.cli.system import devices, doctor
from edgenet.errors import EXIT_INTERNAL


def _help_shows_metavars_not_types() -> None:
    """Typer's help shows an argument's Python type (`<list[str]>`) even when it has a metavar (`PATH`), and
    `<bool>` after every flag. Here arguments show their metavar alone and flags nothing, as options with a
    metavar do (and Typer's own behaviour is kept if these names ever change)."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:
        return
    argument_type = getattr(TyperArgument, "display_type_rich", None)
    option_type = getattr(TyperOption, "display_type_rich", None)
    if argument_type is None or option_type is None:
        return

    def argument_display(self, ctx):
        return "" if self.metavar else argument_type(self, ctx)

    def option_display(self, ctx):
        return "" if getattr(self, "is_flag", False) and self.metavar is None else option_type(self, ctx)

    TyperArgument.display_type_rich = argument_display
    TyperOption.display_type_rich = option_display


_help_shows_metavars_not_types()
HELP = "Run quantized MobileNets on small boards (CPU/XNNPACK or a Coral Edge TPU), with per-frame latency."
SETTINGS = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=SETTINGS,
)
models_app = typer.Typer(
    help="The model zoo: list, pull, verify, inspect, build.", no_args_is_help=True, context_settings=SETTINGS
)
app.add_typer(models_app, name="models")


def _version(asked: bool) -> None:
    if asked:
        from edgenet import __version__

        print(f"edgenet {__version__}")
        raise typer.Exit(0)


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print edgenet's version and exit."
    ),
) -> None:
    """Run quantized MobileNets on small boards (CPU/XNNPACK or a Coral Edge TPU), with per-frame latency."""


app.command()(classify)
app.command()(detect)
app.command(name="eval")(evaluate)
app.command()(bench)
app.command()(choose)
app.command()(learn)
app.command()(devices)
app.command()(doctor)
app.command(hidden=True)(samples)
models_app.command("list")(models_list)
models_app.command("pull")(models_pull)
models_app.command("path")(models_path)
models_app.command("verify")(models_verify)
models_app.command("info")(models_info)
models_app.command("build")(models_build)


def _usage_line(problem) -> str:
    """Typer's refusal (a bad option value, a missing argument) as one line, with where to look."""
    message = " ".join(problem.format_message().split())
    context = getattr(problem, "ctx", None)
    where = f" (see {context.command_path} --help)" if context is not None else ""
    return f"edgenet: error: {message}{where}"


def _click_exceptions() -> tuple[type, type]:
    """(ClickException, Abort) of the click Typer runs on: vendored since Typer 0.22, click before."""
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        from click.exceptions import Abort, ClickException

        return ClickException, Abort
    return ClickException, typer.Abort


def main(args: list[str] | None = None) -> int:
    click_exception, abort = _click_exceptions()
    try:
        code = app(args=args, standalone_mode=False, prog_name="edgenet")
    except click_exception as problem:
        if type(problem).__name__ == "NoArgsIsHelpError":  # bare `edgenet` (or `edgenet models`): the help
            return 0
        print(_usage_line(problem), file=sys.stderr, flush=True)
        return problem.exit_code
    except abort:
        return 130
    except Exception as bug:  # a bug: one line for cron logs, the traceback on request
        if os.environ.get("EDGENET_DEBUG"):
            raise
        text = " ".join(str(bug).split())[:300]
        print(
            f"edgenet: internal error: {type(bug).__name__}: {text} (a bug in edgenet: run again with "
            "EDGENET_DEBUG=1 for the traceback and report it)",
            file=sys.stderr,
            flush=True,
        )
        return EXIT_INTERNAL
    return code if isinstance(code, int) else 0
