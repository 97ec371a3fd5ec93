"""The `edgenet` command's entry point (console script and `python -m edgenet`).

A Ctrl-C or SIGTERM while edgenet is starting (importing, parsing) ends it quietly with 130: nothing has been
done yet, so there is nothing to flush. A command that runs frames installs its own handlers (one stop
mechanism: edgenet.run.stop) and puts these back when it ends, so a signal at the very end is 130 too.
"""

from __future__ import annotations

import os
import signal
import sys

EXIT_INTERRUPTED = 130  # as edgenet.errors, which is not imported here: this must stay light


def _quiet_exit(_signum, _frame) -> None:
    os._exit(EXIT_INTERRUPTED)


def install_quiet_exit() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _quiet_exit)


def main() -> None:
    install_quiet_exit()
    if sys.stderr is None:  # started with stderr closed (`2>&-`): messages go nowhere, not into a crash
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
    from edgenet.cli import main as run

    sys.exit(run())
