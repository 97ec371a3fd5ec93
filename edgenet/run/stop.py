"""One stop mechanism for every command: SIGINT and SIGTERM ask the run to stop between frames (the frame in
flight finishes and is written); a second Ctrl-C stops at once. Commands that time things (bench) call
`check()` between steps and get an Interrupted error."""

from __future__ import annotations

import signal
import threading

from edgenet.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    def __init__(self):
        self.received: list[str] = []
        self._previous: dict = {}

    def _handle(self, signum, _frame) -> None:
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received.append(signal.Signals(signum).name)

    def __bool__(self) -> bool:
        return bool(self.received)

    def request(self, why: str) -> None:
        """Stop for another reason than a signal (a second Ctrl-C arriving as KeyboardInterrupt, ...)."""
        self.received.append(why)

    @property
    def why(self) -> str:
        return self.received[0] if self.received else ""

    def check(self) -> None:
        if self.received:
            raise Interrupted(f"interrupted ({self.why})")

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._handle) for sig in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        # back to what was there before: edgenet.entry's quiet exit, so that a signal arriving after the run
        # (while the summary prints, or Python shuts down) still ends with 130, not with a signal's 143
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}
