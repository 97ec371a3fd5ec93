"""Human lines on stderr: messages, warnings, errors. Text only, never markup: a file name holding `[/red]`
or an escape sequence is shown as it is written, not interpreted by rich or by the terminal."""

from __future__ import annotations

import re
import sys

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """User-given text made safe to show: control characters (ESC included) as \\xNN, and the undecodable
    bytes of a non-UTF-8 file name (lone surrogates) as \\udcNN."""
    text = _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", str(text))
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def say(message: str, style: str = "") -> None:
    """One human line on stderr; coloured (rich) only on a terminal."""
    text = printable(message)
    stream = sys.stderr
    try:
        if style and stream.isatty():
            from rich.console import Console
            from rich.text import Text

            Console(stderr=True, highlight=False, soft_wrap=True).print(Text(text, style=style))
        else:
            stream.write(text + "\n")
            stream.flush()
    except (OSError, ValueError):
        pass  # stderr closed or full: nothing better to do with a human line


def warn(message: str) -> None:
    say(f"warning: {message}", "yellow")


def error(message: str) -> None:
    """The one-line error of a command that stops (its exit code says which kind)."""
    say(f"edgenet: error: {message}")


def terminal_width(stream=None, default: int = 80) -> int:
    """The width of the terminal `stream` (stderr by default) shows on; COLUMNS wins, as for `ls`."""
    import os

    if os.environ.get("COLUMNS", "").isdigit():
        return int(os.environ["COLUMNS"])
    try:
        return os.get_terminal_size((stream or sys.stderr).fileno()).columns
    except (OSError, ValueError, AttributeError):
        return default
