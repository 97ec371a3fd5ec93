"""Image runs: files, folders and globs, each image once, in order; with --state, only the new ones, under a
lock so that overlapping cron runs do not collide.

Nothing is skipped silently: a folder that cannot be listed and an image that stopped earlier runs while it
was being decoded (the state's poison pills) are error records; FIFOs and links to folders are counted in
a warning. A glob that matches nothing is like an empty folder: an empty inbox is nothing to do.
"""

from __future__ import annotations

import glob
import os
from itertools import chain

from edgenet.choices import RecordFormat
from edgenet.console import say, warn
from edgenet.run.common import finish, open_for_job, reporter_sinks
from edgenet.run.keep import keep_sinks
from edgenet.run.loop import Loop
from edgenet.run.summary import RunSummary, plural


def _failure_frames(sources: list[tuple[str, str]], start: int = 0):
    from edgenet.sources import Frame

    for offset, (source, error) in enumerate(sources):
        yield Frame(source=source, index=start + offset, image=None, decode_ms=0.0, error=error)


def _found(job, quiet: bool):
    """The image paths, the error records to write before them, and whether there is anything to do."""
    from edgenet.inputs import find_inputs

    found = find_inputs(list(job.inputs.paths))
    for message in found.warnings:
        warn(message)
    empty_globs = [p for p in found.paths if glob.has_magic(p) and not os.path.lexists(p)]
    paths = [p for p in found.paths if p not in empty_globs]
    if empty_globs and paths and not quiet:
        say(f"no file matches {', '.join(empty_globs)}")
    if not paths and not found.failures and not quiet:
        others = ", ".join(f"{count} {ext}" for ext, count in found.other_files[:4])
        matched = f"{', '.join(empty_globs)} matched no file; " if empty_globs else ""
        say(
            f"{matched}no images in the given folders (looked for .jpg .jpeg .png .bmp .webp .tif .gif ...)"
            + (f"; other files there: {others}" if others else "")
            + ": nothing to do"
        )
    return paths, list(found.failures)


class _chained:
    """Error frames first, then the images (a FolderWatch's `interrupt()` and ImageReads' `workers` passed
    on)."""

    def __init__(self, first, then):
        self.first, self.then = first, then
        self.workers = getattr(then, "workers", 1)

    def __iter__(self):
        yield from self.first
        yield from self.then

    def interrupt(self) -> None:
        interrupt = getattr(self.then, "interrupt", None)
        if interrupt is not None:
            interrupt()


def run_images(job, stop, held) -> int:
    quiet = job.output.quiet
    paths, failures = _found(job, quiet)
    if not paths and not failures and not job.inputs.watch:  # an empty inbox is normal: nothing to do
        return 0
    seen, poisoned = None, []
    if job.unattended.state:
        from edgenet.state import POISONED_ERROR, AlreadyRunning, RunLock, SeenState

        try:
            state = job.unattended.state
            lock = RunLock(
                state + ".lock",
                wait=job.unattended.wait,
                should_stop=lambda: bool(stop),
                waiting=lambda pid: say(f"waiting for the run that holds {state} (pid {pid or '?'})"),
            )
            held.enter_context(lock)
        except AlreadyRunning as busy:
            say(f"edgenet: {busy}; this run does nothing (use --wait to queue behind it)")
            return 0
        seen = SeenState(job.unattended.state)
        held.callback(seen.close)  # after the loop: the capture thread has stopped using it
        for message in seen.warnings:
            warn(message)
        if seen.interrupted() and not quiet:
            say(
                f"{plural(len(seen.interrupted()), 'image')} left in progress by a run that died: tried again"
            )
        poisoned = [(path, POISONED_ERROR) for path in seen.poisoned()]
        found = len(paths)
        paths = [path for path in paths if seen.is_new(path)]
        if not paths and not failures and not poisoned and not job.inputs.watch:
            if not quiet:
                say(
                    f"nothing new: all {plural(found, 'image')} already have records "
                    f"(state {job.unattended.state})"
                )
            return 0
    model = open_for_job(job, stop, folder=not job.inputs.watch)
    return _classify(job, model, paths, failures, poisoned, seen, stop)


def _classify(job, model, paths: list[str], failures: list, poisoned: list, seen, stop) -> int:
    from edgenet.imaging import decode_target
    from edgenet.run.workers import ImageReads, workers_for
    from edgenet.sinks import Sinks
    from edgenet.sinks.formats import open_record_sink
    from edgenet.sinks.reporters import ProgressSink, StateSink

    workers = None if job.inputs.watch else workers_for(model)  # EDGENET_DECODE_WORKERS checked first
    summary = RunSummary()
    data = open_record_sink(
        RecordFormat(job.output.format), job.output.output, task=job.task.task, regions=bool(job.watchers)
    )
    kept = keep_sinks(job.keep, model, inputs=job.inputs, quiet=job.output.quiet, stop=stop)
    total = len(failures) + len(poisoned) + len(paths)
    sinks = Sinks(
        [
            *kept.before,
            data,
            StateSink(seen, skip={source for source, _ in failures}) if seen is not None else None,
            summary,
            None if job.inputs.watch else ProgressSink.wanted(total, job.output.quiet, job.verb),
            *reporter_sinks(job, model),
            *kept.after,
        ]
    )
    task = model.task
    resize = getattr(task, "resize", None)
    min_short = decode_target(task.engine.input, resize) if job.inputs.fast_decode and resize else None
    first = len(failures) + len(poisoned)
    hooks = {
        "max_pixels": job.inputs.pixel_cap,
        "before_read": seen.begin if seen is not None else None,
        "after_read": seen.decoded if seen is not None else None,
    }
    if job.inputs.watch:
        from edgenet.watch import FolderWatch

        is_new = seen.is_new if seen else None
        watch = FolderWatch(list(job.inputs.paths), paths, is_new=is_new, settle=job.inputs.settle, **hooks)
        watch.start_index = first
        if not job.output.quiet:
            say(f"watching {', '.join(job.inputs.paths)} for new images (Ctrl-C or SIGTERM stops)")
        images = watch
    elif workers == 1:  # the capture thread reads them in turn, as it always has
        from edgenet.sources import image_frames

        images = image_frames(paths, start_index=first, min_short=min_short, **hooks)
    else:
        alone = seen.interrupted() if seen is not None else ()
        images = ImageReads(
            paths, workers=workers, start_index=first, alone=alone, min_short=min_short, **hooks
        )
    frames = _chained(chain(_failure_frames(failures), _failure_frames(poisoned, len(failures))), images)
    outcome = Loop(model, sinks, live=False, stop=stop, watchers=job.watchers).run(frames, summary)
    return finish(job, model, outcome, noun="image", stream=False)
