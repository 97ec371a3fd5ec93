"""Sinks that report a run elsewhere: the incremental state, the Prometheus textfile, MQTT, and the
progress bar. The state follows the data writer in the list: an image is marked done only once its record is
written."""

from __future__ import annotations

import sys

from edgenet.console import say, warn
from edgenet.sinks import Sink


class StateSink(Sink):
    """Marks each image done in the incremental state (edgenet.state.SeenState), after its record, with the
    size and mtime the file had when it was read and its error if any (errors are retried a few times).
    `skip`: sources that are not images (a folder that could not be listed)."""

    def __init__(self, seen, skip=frozenset()):
        self.seen = seen
        self.skip = frozenset(skip)

    def write(self, result) -> None:
        record = result.record
        if "event" not in record and record["source"] not in self.skip:
            self.seen.mark_done(
                record["source"], getattr(result.frame, "file_key", None), record.get("error")
            )


class PromSink(Sink):
    """The Prometheus textfile (edgenet.metrics), labelled with the model and the delegate's kind."""

    def __init__(self, path: str, every_s: float, model):
        from edgenet.metrics import PromTextfile

        self.textfile = PromTextfile(path, model=model.name, delegate=model.delegate, every_s=every_s)
        self.summary = None

    def start(self, summary) -> None:
        self.summary = summary  # the run's figures, counted once (the summary sink comes first)

    def write(self, result) -> None:
        if "event" not in result.record:
            fps = self.summary.steady_fps() if self.summary is not None else None
            self.textfile.observe(result.record, fps)

    def close(self) -> None:
        self.textfile.write()  # a failed write is a warning (said once each), never a stop
        for message in self.textfile.warnings:
            warn(message)


class MqttSink(Sink):
    """Records, status and stats on an MQTT broker (edgenet.mqtt): never a stop, never a lost message (an
    on-disk outbox holds what the broker has not acknowledged); what happened is said once at the end.

    With regions: each region's confirmed state, retained, and Home Assistant discovery configs (published
    when the run starts) so that each region is a sensor there (edgenet.home_assistant)."""

    def __init__(
        self, publisher, quiet: bool = False, regions=(), model: str = "", discovery_prefix: str = ""
    ):
        self.publisher = publisher
        self.quiet = quiet
        self.regions = tuple(regions)
        self.model = model
        self.discovery_prefix = discovery_prefix

    def start(self, summary) -> None:
        self.publisher.run = summary  # the stats message's frames, errors and fps: the run's own figures
        if not self.discovery_prefix:
            return
        from edgenet import __version__, home_assistant

        for region in self.regions:
            topic, payload = home_assistant.discovery(
                self.publisher.topic, region, self.model, __version__, self.discovery_prefix
            )
            self.publisher.publish_retained(topic, payload)

    def write(self, result) -> None:
        record = result.record
        if record.get("event") == "state":
            from edgenet import home_assistant

            base = self.publisher.topic
            self.publisher.publish_retained(
                home_assistant.state_topic(base, record["region"]), str(record["to"])
            )
            self.publisher.publish_retained(
                home_assistant.attributes_topic(base, record["region"]), home_assistant.attributes(record)
            )
        self.publisher.publish(record)

    def close(self) -> None:
        self.publisher.close()
        for message in self.publisher.warnings:
            warn(message)
        if not self.quiet or self.publisher.pending or self.publisher.dropped:
            say(self.publisher.summary())


class ProgressSink(Sink):
    """A progress bar on a terminal, for image runs of two or more images."""

    def __init__(self, total: int, verb: str = "classifying"):
        self.total = total
        self.verb = verb
        self._progress = None

    @classmethod
    def wanted(cls, total: int, quiet: bool, verb: str = "classifying"):
        return None if quiet or total < 2 or not sys.stderr.isatty() else cls(total, verb)

    def start(self, summary) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn(self.verb),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=Console(stderr=True),
        )
        self._task = self._progress.add_task(self.verb, total=self.total)
        self._progress.start()

    def write(self, result) -> None:
        if self._progress is not None and "event" not in result.record:
            self._progress.advance(self._task)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
