"""The command line: one file per command group, each parsing options into a config for the layers below.

Human output (tables, progress, warnings, summaries) goes to stderr; data (jsonl, csv, json) to stdout or
--output. Errors are one line on stderr and an exit code (edgenet.errors), Typer's own refusals of bad
option values included.
"""

from __future__ import annotations

import os
import sys

import typer

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

# Every command: name -> (module, function, extra registration). Only the command asked for is imported and
# built (a cron run of classify imports no other command's module and builds no other click command); help
# and an unknown command get them all.
COMMANDS: dict[str, tuple[str, str, dict]] = {
    "classify": ("edgenet.cli.classify", "classify", {}),
    "detect": ("edgenet.cli.detect", "detect", {}),
    "eval": ("edgenet.cli.evaluate", "evaluate", {}),
    "bench": ("edgenet.cli.bench", "bench", {}),
    "choose": ("edgenet.cli.choose", "choose", {}),
    "learn": ("edgenet.cli.learn", "learn", {}),
    "devices": ("edgenet.cli.system", "devices", {}),
    "doctor": ("edgenet.cli.system", "doctor", {}),
    "samples": ("edgenet.cli.models", "samples", {"hidden": True}),
}
MODELS_HELP = "The model zoo: list, pull, verify, inspect, build."
MODEL_COMMANDS: dict[str, tuple[str, str, dict]] = {
    "list": ("edgenet.cli.models", "models_list", {}),
    "pull": ("edgenet.cli.models", "models_pull", {}),
    "path": ("edgenet.cli.models", "models_path", {}),
    "verify": ("edgenet.cli.models", "models_verify", {}),
    "info": ("edgenet.cli.models", "models_info", {}),
    "build": ("edgenet.cli.models", "models_build", {}),
}
GROUPS = {"models": (MODELS_HELP, MODEL_COMMANDS)}


class _PlainHelpGroup(typer.core.TyperGroup):
    """The top level's help in click's plain layout: a list of commands needs no panels, and rendering it
    with rich (typer.rich_utils: rich, markdown-it, pygments) would double `edgenet --help`'s time. Each
    command's own help keeps Typer's rich panels."""

    def format_help(self, ctx, formatter) -> None:
        super(typer.core.TyperGroup, self).format_help(ctx, formatter)  # click's own


def _version(asked: bool) -> None:
    if asked:
        from edgenet import __version__

        print(f"edgenet {__version__}")
        raise typer.Exit(0)


def _options(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="Print edgenet's version and exit."
    ),
) -> None:
    """Run quantized MobileNets on small boards (CPU/XNNPACK or a Coral Edge TPU), with per-frame latency."""


def _register(app: typer.Typer, commands: dict, only: str | None) -> None:
    for name, (module, function, extra) in commands.items():
        if only is None or name == only:  # __import__, not importlib's: -X importtime sees it (tests do)
            app.command(name, **extra)(getattr(__import__(module, fromlist=[function]), function))


def _asked(args: list[str]) -> list[str]:
    """The command names on the command line before its first option: ["models", "list"], ["classify"]."""
    names = []
    for arg in args:
        if arg.startswith("-"):
            break
        names.append(arg)
    return names[:2]


def build_app(args: list[str] | None = None) -> typer.Typer:
    """The command line, with only the command that `args` asks for when it names one (all of them for
    help, a bare `edgenet` or a name that is no command)."""
    asked = _asked(list(sys.argv[1:] if args is None else args))
    only = asked[0] if asked and (asked[0] in COMMANDS or asked[0] in GROUPS) else None
    app = typer.Typer(
        help=HELP,
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings=SETTINGS,
        cls=_PlainHelpGroup,
    )
    app.callback()(_options)
    _register(app, COMMANDS, only)
    for group, (help_text, commands) in GROUPS.items():
        if only not in (None, group):
            continue
        sub = typer.Typer(help=help_text, no_args_is_help=True, context_settings=SETTINGS)
        sub_only = asked[1] if only == group and len(asked) > 1 and asked[1] in commands else None
        _register(sub, commands, sub_only)
        app.add_typer(sub, name=group)
    return app


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
        code = build_app(args)(args=args, standalone_mode=False, prog_name="edgenet")
    except click_exception as problem:
        if type(problem).__name__ == "NoArgsIsHelpError":  # bare `edgenet` (or `edgenet models`): the help
            print(problem.format_message(), flush=True)
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
