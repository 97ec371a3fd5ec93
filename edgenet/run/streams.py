"""Stream runs: a live camera (the newest frame each time, stale ones dropped and counted) or video files
(every frame, in order). The camera is opened first and locked; the interpreter is warmed up before capture
starts."""

from __future__ import annotations

import sys

from edgenet.choices import RecordFormat
from edgenet.console import say, warn
from edgenet.errors import UsageError
from edgenet.run.common import finish, open_for_job, reporter_sinks
from edgenet.run.keep import keep_sinks
from edgenet.run.loop import Limits, Loop
from edgenet.run.summary import RunSummary


def run_stream(job, stop, held) -> int:
    from edgenet import cameras, sources

    inputs = job.inputs
    if inputs.camera:
        from edgenet.state import AlreadyRunning, camera_lock

        spec = cameras.parse_camera(inputs.camera)
        lock = camera_lock(spec, wait=job.unattended.wait, should_stop=lambda: bool(stop))
        try:
            if lock is not None:
                held.enter_context(lock)
        except AlreadyRunning as busy:
            say(f"edgenet: {busy}: another edgenet is using this camera; this run does nothing")
            return 0

        def opener():
            return cameras.open_camera(spec, inputs.width, inputs.height, inputs.fps)

        first = opener()  # a camera that cannot be opened stops here: exit 4, before the model loads
        frames = cameras.CameraFrames(
            opener,
            spec.name,
            reconnect=inputs.reconnect,
            every=inputs.every,
            first_capture=first,
            interval=inputs.interval,
        )
        held.callback(frames.release)
        model = open_for_job(job, stop)
        return _run(job, model, frames, stop, live=True, title=spec.name)
    videos = sources.expand_inputs(list(inputs.videos), videos=True)
    if inputs.videos and not videos:
        raise UsageError(
            f"no video files in {', '.join(inputs.videos)}; give video files "
            f"({', '.join(sources.VIDEO_EXTENSIONS[:4])} ...) to --video"
        )
    paths = sources.expand_inputs(list(inputs.paths)) + videos
    model = open_for_job(job, stop)
    from edgenet.runtime import decode_threads

    threads = decode_threads(model.engine.threads)  # the decoder gets the cores inference leaves
    frames = sources.file_frames(paths, inputs.every, threads, frozenset(videos), max_pixels=inputs.pixel_cap)
    title = paths[0] if len(paths) == 1 else f"{len(paths)} files"
    return _run(job, model, frames, stop, live=False, title=title)


def _run(job, model, frames, stop, *, live: bool, title: str) -> int:
    from edgenet.sinks import Sinks
    from edgenet.sinks.formats import open_record_sink
    from edgenet.sinks.live import LiveView

    output = job.output
    table = RecordFormat(output.format) == RecordFormat.table
    if table and not output.quiet and not sys.stderr.isatty():
        warn(
            "streams print a summary only with --format table; use --format jsonl or csv for per-frame "
            "records"
        )
    summary = RunSummary()
    kept = keep_sinks(job.keep, model, inputs=job.inputs, quiet=output.quiet, stop=stop)
    sinks = Sinks(
        [
            *kept.before,
            None
            if table
            else open_record_sink(
                output.format,
                output.output,
                task=job.task.task,
                regions=bool(job.watchers),
            ),
            summary,
            *reporter_sinks(job, model),
            LiveView(f"edgenet: {title}") if not output.quiet and sys.stderr.isatty() else None,
            *kept.after,
        ]
    )
    limits = Limits(max_frames=job.inputs.max_frames, duration=job.inputs.duration, warm_up=True)
    outcome = Loop(model, sinks, live=live, stop=stop, limits=limits, watchers=job.watchers).run(
        frames, summary
    )
    return finish(job, model, outcome, noun="frame", title=title, stream=True)
