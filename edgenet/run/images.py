"""Image runs: files, folders and globs, each image once, in order; with --state, only the new ones, under a
lock so that overlapping cron runs do not collide."""

from __future__ import annotations

from edgenet.choices import RecordFormat
from edgenet.console import say
from edgenet.run.common import finish, open_for_job, reporter_sinks
from edgenet.run.keep import keep_sinks
from edgenet.run.loop import Loop
from edgenet.run.summary import RunSummary, plural


def run_images(job, stop, held) -> int:
    from edgenet.sources import expand_inputs

    quiet = job.output.quiet
    paths = expand_inputs(list(job.inputs.paths))
    if not paths:  # an empty inbox is normal for a cron job: nothing to do is not a failure
        if not quiet:
            say("no images in the given folders (looked for .jpg .jpeg .png .bmp .webp .tif): nothing to do")
        return 0
    seen = None
    if job.unattended.state:
        from edgenet.state import AlreadyRunning, RunLock, SeenState

        try:
            held.enter_context(RunLock(job.unattended.state + ".lock", wait=job.unattended.wait))
        except AlreadyRunning as busy:
            say(f"edgenet: {busy}; this run does nothing (use --wait to queue behind it)")
            return 0
        seen = SeenState(job.unattended.state)
        held.callback(seen.close)
        found = len(paths)
        paths = [path for path in paths if seen.is_new(path)]
        if not paths:
            if not quiet:
                say(
                    f"nothing new: all {plural(found, 'image')} already have records "
                    f"(state {job.unattended.state})"
                )
            return 0
    model = open_for_job(job)
    return _classify(job, model, paths, seen, stop)


def _classify(job, model, paths: list[str], seen, stop) -> int:
    from edgenet.imaging import decode_target
    from edgenet.sinks import Sinks
    from edgenet.sinks.formats import open_record_sink
    from edgenet.sinks.reporters import ProgressSink, StateSink
    from edgenet.sources import image_frames

    summary = RunSummary()
    data = open_record_sink(RecordFormat(job.output.format), job.output.output)
    kept = keep_sinks(job.keep, model, inputs=job.inputs, quiet=job.output.quiet, stop=stop)
    sinks = Sinks(
        [
            *kept.before,
            data,
            StateSink(seen) if seen is not None else None,
            summary,
            ProgressSink.wanted(len(paths), job.output.quiet, job.verb),
            *reporter_sinks(job, model),
            *kept.after,
        ]
    )
    task = model.task
    min_short = decode_target(task.engine.input, task.resize) if job.inputs.fast_decode else None
    loop = Loop(model, sinks, live=False, stop=stop)
    outcome = loop.run(image_frames(paths, min_short=min_short), summary)
    return finish(job, model, outcome, noun="image", stream=False)
