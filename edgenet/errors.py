"""One exception hierarchy. Each error carries its exit code and a message that says what to do."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INPUT_FAILED = 1
EXIT_USAGE = 2
EXIT_MODEL = 3
EXIT_DEVICE = 4
EXIT_INTERRUPTED = 130
EXIT_INTERNAL = 70  # a bug in edgenet (EX_SOFTWARE): the one line says how to see the traceback


class EdgenetError(Exception):
    """Base class: `str(error)` is the one line shown to the user."""

    exit_code = EXIT_INPUT_FAILED


class UsageError(EdgenetError):
    exit_code = EXIT_USAGE


class ModelError(EdgenetError):
    """Model missing, corrupt, checksum mismatch, unsupported."""

    exit_code = EXIT_MODEL


class DeviceError(EdgenetError):
    """No Edge TPU, camera unavailable, delegate failed."""

    exit_code = EXIT_DEVICE


class Interrupted(EdgenetError):
    """SIGINT or SIGTERM stopped the command (a run, a bench, a model download): what it finished before is
    complete and flushed, and nothing half-done was kept."""

    exit_code = EXIT_INTERRUPTED


class InputError(EdgenetError):
    """One input (image, frame) could not be used. Becomes an error record, not an exit."""

    exit_code = EXIT_INPUT_FAILED


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception's message on one line, cut to `limit` characters; its class name when it has none."""
    text = " ".join(str(exc).split())
    return text[:limit] if text else type(exc).__name__
