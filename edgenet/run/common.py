"""What image and stream runs share: opening the model for a job, the reporters, and the end of a run."""

from __future__ import annotations

import contextlib
import os
import sys

from edgenet.console import say, warn
from edgenet.errors import EXIT_INTERRUPTED


def finish(job, model, outcome, *, noun: str, title: str = "", stream: bool) -> int:
    """After the loop: the summary line, then the exit code (a failure that ended the run is raised)."""
    summary = outcome.summary
    if not job.output.quiet:
        say(summary.line(model.describe(), noun=noun, title=title, stream=stream))
    why = ", ".join(outcome.stopped) or "stop"
    if outcome.stuck:
        # the writer thread is stuck in write() on a reader that stopped reading: flushing stdout at exit
        # would hang too, so leave without Python's shutdown
        from edgenet.run.loop import STALLED_OUTPUT_GRACE_S

        say(
            f"interrupted ({why}): {outcome.unwritten} records were not written because the output was not "
            f"being read for {STALLED_OUTPUT_GRACE_S:g} s; the records before them are complete",
            "red",
        )
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    if outcome.failure is not None:
        raise outcome.failure
    if outcome.stopped:
        say(f"interrupted ({outcome.stopped[0]}): the records above are complete and flushed", "yellow")
        return EXIT_INTERRUPTED
    return 1 if summary.errors else 0


def reporter_sinks(job, model) -> list:
    """The Prometheus textfile and MQTT, once the model (and where it runs) is known."""
    from edgenet.sinks.reporters import MqttSink, PromSink

    found = []
    options = job.unattended
    if options.prom_textfile:
        found.append(PromSink(options.prom_textfile, options.prom_every, model.info))
    if options.mqtt is not None:
        from edgenet.mqtt import MqttPublisher

        mqtt = options.mqtt
        publisher = MqttPublisher(
            mqtt.address,
            topic=mqtt.topic,
            username=mqtt.user,
            password=mqtt.password,
            tls=mqtt.tls,
            ca_file=mqtt.ca,
            every=mqtt.every,
            on_change=mqtt.on_change,
            change_key=model.task.change_key,  # top-1 for classify, the set of labels for detect
            outbox=os.path.dirname(os.path.abspath(options.state)) if options.state else None,
        )
        regions = [named.name for named in getattr(job.task, "regions", ())]
        found.append(
            MqttSink(
                publisher,
                quiet=job.output.quiet,
                regions=regions,
                model=model.name,
                discovery_prefix=mqtt.discovery_prefix,
            )
        )
    return found


def open_for_job(job, stop=None, *, folder: bool = False):
    """The model, its warnings said once. A stop request ends a download of it (exit 130). `folder`: a run
    over image files, whose default threads leave cores to the decode workers (run.workers)."""
    from dataclasses import replace

    from edgenet.model import open_model

    request = replace(job.model, folder=True) if folder else job.model
    model = open_model(request, job.task, should_stop=(lambda: bool(stop)) if stop is not None else None)
    for message in model.warnings:
        warn(message)
    return model
