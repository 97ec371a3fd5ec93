"""Sinks: everything a record goes to after the loop made it, as a list, in order. What keeps files beside
the record comes first (evidence, which adds `saved` to it, and annotated images, which must exist once the
record does), then the data writer (jsonl/csv/table to stdout or --output), then what must only follow a
written record (the incremental state), then the summary and the reporters (Prometheus, MQTT), the live view,
an annotated video, the preview server. A new output is a new sink, not a new flag threaded through the loop.

A sink has `write(result)` (edgenet.run.loop.Result: the record, when its inference ended, the pixels if the
sink sets `wants_pixels`), and optionally `start(summary)` (when frames start flowing) and `close()`. Sinks
writing to the run's data output set `on_output`: when that output is stuck (a reader that stopped reading),
they are not closed, since closing would flush into it and hang.
"""

from __future__ import annotations

from edgenet.errors import DeviceError


class Sink:
    wants_pixels = False
    on_output = False
    keeps = False  # it keeps files beside the record (annotated images, evidence): see Sinks.write

    def start(self, summary) -> None:
        pass

    def write(self, result) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Sinks:
    """The run's sinks in order. A failure in `write` stops the run (the data writer's full disk, the state's
    database): sinks that must never stop a run (MQTT, Prometheus) handle their own failures."""

    def __init__(self, sinks):
        self.sinks = [sink for sink in sinks if sink is not None]

    @property
    def wants_pixels(self) -> bool:
        return any(getattr(sink, "wants_pixels", False) for sink in self.sinks)

    def start(self, summary) -> None:
        for sink in self.sinks:
            start = getattr(sink, "start", None)
            if start is not None:
                start(summary)

    def write(self, result) -> None:
        """Every sink in order. When a sink that keeps files beside the record cannot write them (a full
        disk: DeviceError), the record is still written, nothing after it marks the image done (a run
        with --state does it again), and the failure then stops the run."""
        failed = None
        for sink in self.sinks:
            if failed is not None and not getattr(sink, "on_output", False):
                continue
            try:
                sink.write(result)
            except DeviceError as exc:
                if not getattr(sink, "keeps", False) or failed is not None:
                    raise
                failed = exc
        if failed is not None:
            raise failed

    def stop(self, closing: bool = True) -> None:
        """Close every sink (but those on a stuck output), each whatever the others do; the first failure
        is raised once all are closed."""
        failure = None
        for sink in self.sinks:
            if not closing and getattr(sink, "on_output", False):
                continue
            try:
                sink.close()
            except Exception as exc:  # every sink gets closed; the first failure is raised after
                failure = failure or exc
        if failure is not None:
            raise failure
