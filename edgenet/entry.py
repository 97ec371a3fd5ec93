"""The `edgenet` command's entry point: a Ctrl-C or SIGTERM while it is still starting ends it quietly.

Importing the command line (typer, rich, numpy) and building it take a few tenths of a second; a stop
request in that time used to print a KeyboardInterrupt traceback into cron and journal logs. Nothing has been
done yet then, so there is nothing to flush: exit 130 at once. When the command itself starts, the usual
handlers come back (`release_signals`, from the app's callback) and the command installs its own.
"""

from __future__ import annotations

import os
import signal

EXIT_INTERRUPTED = 130  # as edgenet.errors, which is not imported here: this must stay light
_previous: dict = {}


def _starting(_signum, _frame) -> None:
    os._exit(EXIT_INTERRUPTED)


def release_signals() -> None:
    """The command is about to run: SIGINT and SIGTERM get back the handlers they had before main()."""
    while _previous:
        sig, handler = _previous.popitem()
        signal.signal(sig, handler)


def main() -> None:
    _previous.update({sig: signal.signal(sig, _starting) for sig in (signal.SIGINT, signal.SIGTERM)})
    from edgenet.cli import main as run

    run()
