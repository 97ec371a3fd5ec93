"""Typer app. One function per command: parse options, build the pipeline, render.

Human output (tables, progress, warnings, summaries) goes to stderr; data (jsonl, csv, json) to stdout or
--output. Errors are one line on stderr and an exit code (see edgenet.errors).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys

import typer

from edgenet.errors import EXIT_INTERRUPTED, EdgenetError, UsageError
from edgenet.learn_cli import learn

app = typer.Typer(
    help="Run quantized MobileNet image classifiers on small boards (CPU/XNNPACK or Coral Edge TPU).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _command_starts() -> None:
    # the command line is built: Ctrl-C and SIGTERM stop being edgenet.entry's quiet start-up exit
    from edgenet.entry import release_signals

    release_signals()


models_app = typer.Typer(help="The model zoo: list, pull, verify, inspect.", no_args_is_help=True)
app.add_typer(models_app, name="models")


class Interrupted(Exception):
    """SIGTERM, turned into an exception so the run stops between frames and flushes."""


def _on_sigterm(signum, frame):
    raise Interrupted()


def say(message: str, style: str = "") -> None:
    """One human line on stderr."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(message, style=style or None)


def warn(message: str) -> None:
    say(f"warning: {message}", "yellow")


def fail(error: EdgenetError) -> typer.Exit:
    print(f"edgenet: error: {error}", file=sys.stderr, flush=True)
    return typer.Exit(error.exit_code)


def handles_errors(command):
    """Every EdgenetError becomes its one-line message and exit code; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except EdgenetError as error:
            raise fail(error) from None
        except BrokenPipeError:
            # stdout closed early (e.g. `| head`): nothing more to say, and Python must not complain either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None

    return wrapper


def _parse_range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise UsageError(f"--input-range takes LO,HI (e.g. -1,1 or 0,1), not {text!r}") from None
    if not lo < hi:
        raise UsageError(f"--input-range: LO must be below HI, got {text!r}")
    return (lo, hi)


ModelOption = typer.Option(None, "--model", "-m", help="Zoo name (edgenet models list) or path to a .tflite.")
ThreadsOption = typer.Option(
    None, "--threads", "-t", min=1, help="Inference threads (default: the measured best)."
)
DelegateOption = typer.Option("auto", "--delegate", help="auto | cpu | xnnpack | edgetpu.")
DeviceOption = typer.Option("", "--device", help="Edge TPU: '' (any), ':N', 'usb', 'usb:N', 'pci', 'pci:N'.")
DelegateLibOption = typer.Option(None, "--delegate-lib", help="Load this TFLite external delegate (.so).")


@app.command()
@handles_errors
def classify(
    inputs: list[str] = typer.Argument(None, help="Image files, folders (recursive) or globs."),
    model: str | None = ModelOption,
    labels: str | None = typer.Option(None, "--labels", help="Label file for a .tflite given by path."),
    threads: int | None = ThreadsOption,
    delegate: str = DelegateOption,
    device: str = DeviceOption,
    delegate_lib: str | None = DelegateLibOption,
    resize: str = typer.Option("crop", "--resize", help="crop (shorter side + centre crop) | stretch."),
    input_range: str | None = typer.Option(
        None, "--input-range", help="Override a float input's range: LO,HI."
    ),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many classes per image."),
    threshold: float = typer.Option(0.0, "--threshold", min=0.0, max=1.0, help="Drop classes scoring below."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | jsonl | csv."),
    output: str | None = typer.Option(None, "--output", "-o", help="Append records to this file."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    fast_decode: bool = typer.Option(
        False,
        "--fast-decode",
        help="Decode big JPEGs at 1/2-1/8 scale (libjpeg DCT scaling): much faster, "
        "slightly different pixels than the reference pipeline.",
    ),
    camera: str | None = typer.Option(None, "--camera", help="Live camera: 0, /dev/videoN, picamera2[:N]."),
    video: list[str] | None = typer.Option(None, "--video", help="Video file: every frame, in order."),
    width: int | None = typer.Option(None, "--width", min=1, help="Camera capture width."),
    height: int | None = typer.Option(None, "--height", min=1, help="Camera capture height."),
    fps: float | None = typer.Option(None, "--fps", min=0.1, help="Camera frame rate to ask for."),
    max_frames: int | None = typer.Option(None, "--max-frames", min=1, help="Stop after N frame records."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after S seconds of streaming."),
    every: int = typer.Option(1, "--every", min=1, help="Classify every Nth frame of a video or camera."),
    reconnect: int = typer.Option(5, "--reconnect", min=0, help="Reopen a lost camera up to N times."),
    state: str | None = typer.Option(
        None,
        "--state",
        help="Incremental runs: only images not in this "
        "state file (path, size, mtime); locked against overlapping runs.",
    ),
    wait: bool = typer.Option(
        False, "--wait", help="Wait for a running edgenet to finish instead of exiting."
    ),
    prom_textfile: str | None = typer.Option(
        None,
        "--prom-textfile",
        help="Write Prometheus metrics here (node_exporter textfile collector), atomically.",
    ),
    prom_every: float = typer.Option(15.0, "--prom-every", min=0.0, help="Rewrite the textfile every S s."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Publish records to this MQTT broker HOST[:PORT]."),
    mqtt_topic: str | None = typer.Option(None, "--mqtt-topic", help="Base topic (edgenet/<hostname>)."),
    mqtt_user: str | None = typer.Option(None, "--mqtt-user", help="MQTT username."),
    mqtt_password: str | None = typer.Option(
        None,
        "--mqtt-password",
        envvar="EDGENET_MQTT_PASSWORD",
        help="MQTT password (or EDGENET_MQTT_PASSWORD).",
    ),
    mqtt_tls: bool = typer.Option(False, "--mqtt-tls", help="Connect with TLS (system CA certificates)."),
    mqtt_ca: str | None = typer.Option(None, "--mqtt-ca", help="CA certificate file for TLS."),
    mqtt_every: int = typer.Option(1, "--mqtt-every", min=1, help="Publish every Nth record."),
    mqtt_on_change: bool = typer.Option(False, "--mqtt-on-change", help="Publish when the top-1 changes."),
):
    """Classify images, video files or a live camera; one record per image or frame.

    jsonl/csv go to stdout (or --output), tables, live views and summaries to stderr.
    """
    from edgenet.sinks import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    stream = StreamOptions(
        camera=camera,
        videos=list(video or []),
        width=width,
        height=height,
        fps=fps,
        max_frames=max_frames,
        duration=duration,
        every=every,
        reconnect=reconnect,
    )
    if not inputs and not stream.camera and not stream.videos:
        raise UsageError("give images, folders or globs to classify (e.g. edgenet classify photos/)")
    reporting = Reporting(
        state=state,
        wait=wait,
        prom_textfile=prom_textfile,
        prom_every=prom_every,
        mqtt=mqtt,
        mqtt_topic=mqtt_topic,
        mqtt_user=mqtt_user,
        mqtt_password=mqtt_password,
        mqtt_tls=mqtt_tls,
        mqtt_ca=mqtt_ca,
        mqtt_every=mqtt_every,
        mqtt_on_change=mqtt_on_change,
    )
    exit_code = run_classify(
        inputs or [],
        model=model,
        labels=labels,
        threads=threads,
        delegate=delegate,
        device=device,
        delegate_lib=delegate_lib,
        resize=resize,
        input_range=_parse_range(input_range),
        top_k=top_k,
        threshold=threshold,
        fmt=fmt,
        output=output,
        quiet=quiet,
        stream=stream,
        reporting=reporting,
        fast_decode=fast_decode,
    )
    raise typer.Exit(exit_code)


@dataclasses.dataclass
class Reporting:
    """Unattended-run options: incremental state and lock, Prometheus textfile, MQTT."""

    state: str | None = None
    wait: bool = False
    prom_textfile: str | None = None
    prom_every: float = 15.0
    mqtt: str | None = None
    mqtt_topic: str | None = None
    mqtt_user: str | None = None
    mqtt_password: str | None = None
    mqtt_tls: bool = False
    mqtt_ca: str | None = None
    mqtt_every: int = 1
    mqtt_on_change: bool = False

    def check(self) -> None:
        """Refuse unusable paths before any work, rather than failing at the first record."""
        if self.prom_textfile:
            folder = os.path.dirname(os.path.abspath(self.prom_textfile))
            if (
                os.path.isdir(self.prom_textfile)
                or not os.path.isdir(folder)
                or not os.access(folder, os.W_OK)
            ):
                raise UsageError(
                    f"--prom-textfile {self.prom_textfile}: needs a file name in an existing, "
                    "writable folder (node_exporter's --collector.textfile.directory)"
                )
        if self.mqtt:
            from edgenet.mqtt import parse_host

            parse_host(self.mqtt)

    def wrap(self, sink, classifier):
        """The data sink plus the reporters asked for (they are opened once the model is known)."""
        from edgenet.sinks import FanOut

        if not self.prom_textfile and not self.mqtt:
            return sink
        prom = mqtt = None
        labels = {"model": classifier.model_name, "delegate": classifier.engine.delegate}
        if self.prom_textfile:
            from edgenet.metrics import PromTextfile

            prom = PromTextfile(self.prom_textfile, every_s=self.prom_every, **labels)
        if self.mqtt:
            from edgenet.mqtt import MqttPublisher

            mqtt = MqttPublisher(
                self.mqtt,
                topic=self.mqtt_topic,
                username=self.mqtt_user,
                password=self.mqtt_password,
                tls=self.mqtt_tls,
                ca_file=self.mqtt_ca,
                every=self.mqtt_every,
                on_change=self.mqtt_on_change,
            )
        return FanOut(sink, prom=prom, mqtt=mqtt)


class StopSignals:
    """SIGINT/SIGTERM ask the run to stop between frames: the frame in flight finishes and is written.
    A second Ctrl-C stops at once."""

    def __init__(self):
        self.received: list[str] = []
        self._previous: dict = {}
        self._depth = 0  # entered again by the run inside the command: one set of handlers

    def _handle(self, signum, _frame):
        if self.received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received.append(signal.Signals(signum).name)

    def __bool__(self) -> bool:
        return bool(self.received)

    def __enter__(self) -> StopSignals:
        if self._depth == 0:
            self._previous = {
                sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
            }
        self._depth += 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth -= 1
        if self._depth == 0:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)


def run_classify(
    inputs,
    *,
    fmt,
    output,
    quiet,
    stream: StreamOptions | None = None,
    reporting: Reporting | None = None,
    **model_options,
) -> int:
    reporting = reporting or Reporting()
    reporting.check()
    with StopSignals() as stop:  # from the start: a SIGTERM while the model loads is a clean stop too
        return _run_classify(inputs, fmt, output, quiet, stream, reporting, stop, model_options)


def _run_classify(inputs, fmt, output, quiet, stream, reporting, stop, model_options) -> int:
    model_options["stop"] = stop
    if stream is not None and stream.wanted(inputs):
        if reporting.state:
            raise UsageError("--state keeps track of image files; streams have no state to keep")
        model_options.pop("fast_decode", None)  # video frames are decoded by FFmpeg, whole
        return run_stream(
            inputs, stream, fmt=fmt, output=output, quiet=quiet, reporting=reporting, **model_options
        )
    if stream is not None:
        stream.check_images_only()
    if not reporting.state:
        return _classify_images(
            inputs, None, fmt=fmt, output=output, quiet=quiet, reporting=reporting, **model_options
        )
    from edgenet.state import AlreadyRunning, RunLock, SeenState

    try:
        with RunLock(reporting.state + ".lock", wait=reporting.wait):
            seen = SeenState(reporting.state)
            try:
                return _classify_images(
                    inputs, seen, fmt=fmt, output=output, quiet=quiet, reporting=reporting, **model_options
                )
            finally:
                seen.close()
    except AlreadyRunning as busy:
        say(f"edgenet: {busy}; this run does nothing (use --wait to queue behind it)")
        return 0


def _classify_images(
    inputs,
    seen,
    *,
    fmt,
    output,
    quiet,
    reporting: Reporting,
    stop: StopSignals,
    fast_decode: bool = False,
    **model_options,
) -> int:
    from edgenet.imaging import decode_target
    from edgenet.pipeline import classify_frames, open_model
    from edgenet.sinks import open_sink
    from edgenet.sources import expand_inputs, image_frames

    paths = expand_inputs(inputs)
    if not paths:
        # an empty inbox is normal for a cron job: nothing to do is not a failure
        if not quiet:
            say("no images in the given folders (looked for .jpg .jpeg .png .bmp .webp .tif): nothing to do")
        return 0
    if seen is not None:
        found = len(paths)
        paths = [path for path in paths if seen.is_new(path)]
        if not paths:
            if not quiet:
                say(f"nothing new: all {found} images already have records (state {reporting.state})")
            return 0
    opened = open_model(model_options.pop("model"), labels_file=model_options.pop("labels"), **model_options)
    for message in opened.warnings:
        warn(message)
    sink = reporting.wrap(open_sink(fmt, output), opened.classifier)
    classifier = opened.classifier
    min_short = decode_target(classifier.engine.input, classifier.resize) if fast_decode else None
    stats = RunStats()
    progress = _progress(len(paths), quiet)
    with stop:
        try:
            for result in classify_frames(
                image_frames(paths, min_short=min_short), opened.classifier, should_stop=lambda: bool(stop)
            ):
                record = result.to_dict()
                sink.write(record)  # written and flushed ...
                if seen is not None:
                    seen.mark_done(result.source)  # ... before the state says so
                stats.add(record)
                if progress:
                    progress.advance()
                if stop:
                    break
        except KeyboardInterrupt:
            stop.received.append("SIGINT")
        finally:
            if progress:
                progress.stop()
            sink.close()
    if not quiet:
        say(stats.summary(opened.classifier, "images"))
    if stop:
        say(f"interrupted ({stop.received[0]}): the records above are complete and flushed", "yellow")
        return EXIT_INTERRUPTED
    return 1 if stats.errors else 0


# -- streams: video files and cameras ------------------------------------------------------------------


@dataclasses.dataclass
class StreamOptions:
    """The classify options that only mean something for --camera and --video (and videos given as inputs)."""

    camera: str | None = None
    videos: list = dataclasses.field(default_factory=list)
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    max_frames: int | None = None
    duration: float | None = None
    every: int = 1
    reconnect: int = 5

    def wanted(self, inputs) -> bool:
        from edgenet.sources import is_video

        return bool(self.camera or self.videos) or any(is_video(path) for path in inputs or [])

    def check_images_only(self) -> None:
        if (
            self.max_frames
            or self.duration is not None
            or self.every != 1
            or self.width
            or self.height
            or self.fps
        ):
            raise UsageError(
                "--max-frames, --duration, --every, --width, --height and --fps apply to "
                "--camera and --video (or video files given as inputs)"
            )

    def check_files(self) -> None:
        if self.width or self.height or self.fps:
            raise UsageError(
                "--width, --height and --fps set a camera's capture mode; use them with --camera"
            )


def _file_frames(paths, every: int, decode_threads: int | None = None, videos=frozenset()):
    """Images and videos in the order given: images numbered across the run, each video's frames from 0.

    A path is a video by its extension, or because it came with --video (`videos`)."""
    from edgenet.sources import image_frames, is_video, video_frames

    image_index = 0
    for path in paths:
        if path in videos or is_video(path):
            yield from video_frames(path, every, decode_threads)
        else:
            yield from image_frames([path], start_index=image_index)
            image_index += 1


def run_stream(
    inputs,
    stream: StreamOptions,
    *,
    fmt,
    output,
    quiet,
    reporting: Reporting | None = None,
    stop: StopSignals | None = None,
    **model_options,
) -> int:
    """Classify a live camera (newest frame each time) or video files (every frame, in order)."""
    import time

    from edgenet import sources
    from edgenet.live import LiveView, StreamStats, summary
    from edgenet.pipeline import RecordWriter, classify_stream, open_model
    from edgenet.sinks import open_sink

    if stream.duration is not None and not stream.duration > 0:
        raise UsageError(f"--duration {stream.duration:g}: give a number of seconds above 0")
    if fmt == "table" and output:
        raise UsageError(
            "--output with --camera or --video needs --format jsonl or csv (a stream's table is only the "
            "live view and the summary on stderr)"
        )
    first_capture = None
    if stream.camera:
        if inputs or stream.videos:
            raise UsageError("--camera classifies one live camera; run images and videos separately")
        spec = sources.parse_camera(stream.camera)
        from edgenet.state import AlreadyRunning, camera_lock

        lock = camera_lock(spec, wait=reporting.wait if reporting else False)
        try:
            if lock is not None:
                lock.__enter__()  # released when this process ends, however it ends
        except AlreadyRunning as busy:
            say(f"edgenet: {busy}: another edgenet is using this camera; this run does nothing")
            return 0

        def opener():
            return sources.open_camera(spec, stream.width, stream.height, stream.fps)

        first_capture = opener()  # a camera that cannot be opened stops here: exit 4, before the model loads
        frames = sources.CameraFrames(
            opener, spec.name, reconnect=stream.reconnect, every=stream.every, first_capture=first_capture
        )
        live, title = True, spec.name
    else:
        stream.check_files()
        videos = sources.expand_inputs(stream.videos, videos=True)
        if stream.videos and not videos:
            raise UsageError(
                f"no video files in {', '.join(stream.videos)}; give video files "
                f"({', '.join(sources.VIDEO_EXTENSIONS[:4])} ...) to --video"
            )
        paths = sources.expand_inputs(list(inputs)) + videos
        frames = None  # once the model is open: the decoder gets the cores inference leaves
        live, title = False, paths[0] if len(paths) == 1 else f"{len(paths)} files"
    try:
        opened = open_model(
            model_options.pop("model"), labels_file=model_options.pop("labels"), **model_options
        )
    except BaseException:
        if first_capture is not None:
            first_capture.release()
        raise
    for message in opened.warnings:
        warn(message)
    if frames is None:
        from edgenet.runtime import decode_threads

        threads = decode_threads(opened.classifier.engine.threads)
        frames = _file_frames(paths, stream.every, threads, frozenset(videos))
    if fmt == "table" and not quiet and not sys.stderr.isatty():
        warn(
            "streams print a summary only with --format table; use --format jsonl or csv for "
            "per-frame records"
        )
    sink = None if fmt == "table" else open_sink(fmt, output, stream_records=True)
    if reporting is not None and (reporting.prom_textfile or reporting.mqtt):
        sink = reporting.wrap(sink or _NullSink(), opened.classifier)
    stats = StreamStats()
    stop = (stop or StopSignals()).__enter__()
    stopping = stop.received
    deadline = None  # --duration counts from the end of the warm-up

    def should_stop() -> bool:
        return bool(stopping) or (deadline is not None and time.monotonic() >= deadline)

    view = LiveView(stats, f"edgenet: {title}") if not quiet and sys.stderr.isatty() else None

    def deliver(inferred) -> None:  # in the writer thread: the main thread only infers
        record = opened.classifier.finish(inferred).to_dict()
        if sink:
            sink.write(record)
        stats.add(record, inferred.done)

    writer = RecordWriter(deliver)
    results = classify_stream(
        frames, opened.classifier, live=live, should_stop=should_stop, finish=False, warm_up=False
    )
    failure = None
    taken = 0
    try:
        opened.classifier.warm_up()  # before capture starts (a camera drops nothing meanwhile)
        if stream.duration is not None:
            deadline = time.monotonic() + stream.duration
        if view:
            view.start()
        for result in results:
            if not writer.put(result, give_up=lambda: bool(stopping)):
                break  # asked to stop while the output is not being read
            taken += 1
            if stream.max_frames and taken >= stream.max_frames:
                break
    except KeyboardInterrupt:
        stopping.append("SIGINT")
    except EdgenetError as error:
        failure = error
    finally:
        try:
            results.close()
            # every record taken is written and flushed before the exit; a stop request bounds the wait
            writer.close(give_up=lambda: bool(stopping), grace=STALLED_OUTPUT_GRACE_S)
        except EdgenetError as error:  # e.g. the disk filled up: still say what was done
            failure = failure or error
        finally:
            if view:
                view.stop()
            if sink and not writer.stuck:
                sink.close()
            stop.__exit__()
    if not quiet:
        say(summary(stats, opened.classifier, title))
    if writer.stuck:
        # the writer thread is stuck in write() on a reader that stopped reading: flushing stdout at exit
        # would hang too, so leave without Python's shutdown
        say(
            f"interrupted ({', '.join(stopping) or 'stop'}): {writer.unwritten} records were not written "
            f"because the output was not being read for {STALLED_OUTPUT_GRACE_S:g} s; the records before "
            "them are complete",
            "red",
        )
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    if failure is not None:
        raise failure
    if stopping:
        say(f"interrupted ({stopping[0]}): the records above are complete and flushed", "yellow")
        return EXIT_INTERRUPTED
    return 1 if stats.errors else 0


STALLED_OUTPUT_GRACE_S = 5.0  # after a stop request: how long to wait for a reader that stopped reading


class _NullSink:
    """Streams with --format table write no records, but the reporters still want them."""

    stream = sys.stderr

    def write(self, record: dict) -> None:
        pass

    def close(self) -> None:
        pass


class _Progress:
    def __init__(self, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("classifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
            console=__import__("rich.console").console.Console(stderr=True),
        )
        self._task = self._progress.add_task("classify", total=total)
        self._progress.start()

    def advance(self) -> None:
        self._progress.advance(self._task)

    def stop(self) -> None:
        self._progress.stop()


def _progress(total: int, quiet: bool):
    if quiet or total < 2 or not sys.stderr.isatty():
        return None
    return _Progress(total)


class RunStats:
    """Counts and latency percentiles for the end-of-run summary."""

    def __init__(self):
        import time

        self.started = time.perf_counter()
        self.count = 0
        self.errors = 0
        self.inference: list[float] = []
        self.total: list[float] = []

    def add(self, record: dict) -> None:
        self.count += 1
        if "error" in record:
            self.errors += 1
            return
        self.inference.append(record["latency_ms"]["inference"])
        self.total.append(record["latency_ms"]["total"])

    def summary(self, classifier, noun: str) -> str:
        import time

        from edgenet.live import engine_line
        from edgenet.stats import percentile

        elapsed = time.perf_counter() - self.started
        parts = [f"{self.count} {noun}", f"{self.errors} errors"]
        if self.inference:
            parts.append(
                f"inference p50 {percentile(self.inference, 50):.2f} ms p90 "
                f"{percentile(self.inference, 90):.2f} ms"
            )
            parts.append(f"per image p50 {percentile(self.total, 50):.2f} ms")
        if elapsed > 0 and self.count:
            parts.append(f"{self.count / elapsed:.1f} {noun}/s")
        parts.append(engine_line(classifier))
        return ", ".join(parts)


@app.command(name="eval")
@handles_errors
def evaluate(
    folder: str = typer.Argument(
        ..., help="ImageNet-style folder: class = parent folder or file-name prefix."
    ),
    model: str | None = ModelOption,
    labels: str | None = typer.Option(None, "--labels", help="Label file for a .tflite given by path."),
    threads: int | None = ThreadsOption,
    delegate: str = DelegateOption,
    resize: str = typer.Option("crop", "--resize", help="crop | stretch."),
    input_range: str | None = typer.Option(None, "--input-range", help="Override a float input's range."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Only the first N images."),
):
    """Top-1 / top-5 accuracy on a labelled folder."""
    from edgenet.evaluate import evaluate_folder
    from edgenet.pipeline import open_model

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown --format {fmt!r}; choose table or json")
    opened = open_model(
        model,
        labels_file=labels,
        threads=threads,
        delegate=delegate,
        resize=resize,
        input_range=_parse_range(input_range),
        top_k=5,
    )
    for message in opened.warnings:
        warn(message)
    report = evaluate_folder(folder, opened.classifier, limit=limit)
    if fmt == "json":
        print(json.dumps(report))
    else:
        say(
            f"{report['model']}: top-1 {report['top1'] * 100:.2f}%  top-5 {report['top5'] * 100:.2f}%  "
            f"({report['images']} images, {report['errors']} errors, resize {resize})"
        )
    raise typer.Exit(1 if report["errors"] else 0)


@app.command()
@handles_errors
def bench(
    models: list[str] | None = typer.Option(
        None, "--model", "-m", help="Zoo name or .tflite path; repeat for several."
    ),
    all_models: bool = typer.Option(False, "--all", help="Every zoo model present locally (cache, mirror)."),
    threads: str | None = typer.Option(
        None, "--threads", "-t", help="Thread counts, comma-separated: 1,2,4 (default: measured)."
    ),
    delegate: str = DelegateOption,
    device: str = DeviceOption,
    delegate_lib: str | None = DelegateLibOption,
    runs: int = typer.Option(50, "--runs", min=1, help="At least this many timed runs."),
    min_seconds: float = typer.Option(1.0, "--min-seconds", min=0.0, help="And at least this long (s)."),
    warmup: int = typer.Option(5, "--warmup", min=0, help="Warm-up runs (the first one is first_ms)."),
    mode: str = typer.Option("invoke", "--mode", help="invoke (invoke() alone) | e2e (decode to top-k)."),
    images: str | None = typer.Option(None, "--images", help="e2e photos (default: the sample photos)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json | jsonl | csv."),
    output: str | None = typer.Option(None, "--output", "-o", help="Write the records to this file."),
    compare: str | None = typer.Option(None, "--compare", help="Reference CSV: exit 1 if a p50 regressed."),
    tolerance: float = typer.Option(0.30, "--tolerance", min=0.0, help="Allowed p50 slowdown for --compare."),
):
    """Latency in LiteRT benchmark_model's terms (init, first, warmup, steady state) with host conditions."""
    from edgenet import bench as harness
    from edgenet import zoo
    from edgenet.sources import expand_inputs

    data_format = harness.format_for_output(fmt, output)
    if mode not in harness.MODES:
        raise UsageError(f"unknown --mode {mode!r}; choose one of {', '.join(harness.MODES)}")
    reference = harness.read_reference(compare) if compare else None
    thread_counts = harness.parse_threads(threads)
    if thread_counts is None:
        thread_counts = [harness.default_threads()]
        say(
            f"threads: {thread_counts[0]} (default: usable cores, at most {harness.MAX_DEFAULT_THREADS}; "
            "2 threads measured fastest on a 2-core box; --threads 1,2,4 measures others)"
        )
    names = list(models or [])
    if all_models:
        names += [name for name in harness.local_models() if name not in names]
        if not names:
            raise UsageError(
                "--all found no local model: pull some (edgenet models pull NAME) or set "
                "EDGENET_MODEL_MIRROR to a folder of models"
            )
    names = names or [zoo.default_model()]
    paths: list[str] = []
    if mode == "e2e":
        paths = expand_inputs([images]) if images else harness.default_images()
        if not paths:
            raise UsageError(f"no images found in {images} (looked for .jpg .jpeg .png .bmp .webp .tif)")
    stream = open(output, "w", encoding="utf-8") if output else sys.stdout  # noqa: SIM115
    writer = harness.record_sink(data_format, stream) if (output or fmt != "table") else None
    host = harness.host_info()
    seen: set[str] = set()

    def warn_once(message: str) -> None:
        if message not in seen:
            seen.add(message)
            warn(message)

    records: list[dict] = []
    failures: list[EdgenetError] = []
    interrupted = False
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        for name in names:
            for count in thread_counts:
                try:
                    result = harness.bench_one(
                        name,
                        threads=count,
                        delegate=delegate,
                        device=device,
                        delegate_lib=delegate_lib,
                        mode=mode,
                        images=paths,
                        runs=runs,
                        min_seconds=min_seconds,
                        warmup=warmup,
                        host=host,
                        on_warning=warn_once,
                    )
                except EdgenetError as error:
                    if len(names) * len(thread_counts) == 1:
                        raise
                    failures.append(error)
                    warn(f"{name} with {count} thread(s): {error}")
                    continue
                record = result.to_dict()
                records.append(record)
                if writer:
                    writer.write(record)
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        if writer:
            writer.close()  # closes an --output file too
        elif output:
            stream.close()
    if fmt == "table" and records:
        harness.render_table(records)
    for (model_name, used, _mode), (best, p50) in harness.fastest_threads(records).items():
        say(f"{model_name} on {used}: fastest with {best} thread(s) here (p50 {p50:.3f} ms)")
    if interrupted:
        say("interrupted: the records above are complete and flushed", "yellow")
        raise typer.Exit(EXIT_INTERRUPTED)
    if failures and not records:
        raise failures[-1]
    exit_code = 1 if failures else 0
    if reference is not None:
        compared, regressed = harness.compare(records, reference, tolerance)
        if not compared:
            raise UsageError(
                f"--compare {compare}: no row matches these runs (same model, delegate, threads and mode)"
            )
        for row in regressed:
            say(
                f"REGRESSED {row['model']} {row['delegate']} threads {row['threads']} {row['mode']}: p50 "
                f"{row['p50_ms']:.3f} ms vs {row['reference_p50_ms']:.3f} ms ({row['ratio']:.2f}x, tolerance "
                f"{tolerance:.0%})",
                "red",
            )
        say(f"compare: {len(compared)} row(s) checked against {compare}, {len(regressed)} regressed")
        if regressed:
            exit_code = 1
    raise typer.Exit(exit_code)


@app.command()
@handles_errors
def devices(fmt: str = typer.Option("table", "--format", "-f", help="table | json.")):
    """Edge TPUs (USB and PCIe), CPU, TFLite backend, and whether libedgetpu is installed."""
    from edgenet.doctor import devices_report

    if fmt not in ("table", "json"):
        raise UsageError(f"unknown --format {fmt!r}; choose table or json")
    report = devices_report()
    if fmt == "json":
        print(json.dumps(report, indent=1))
        return
    tpus = report["edgetpus"]
    print(f"Edge TPUs: {len(tpus) or 'none found'}")
    for index, tpu in enumerate(tpus):
        slow = " (USB 2: about half the throughput)" if tpu.get("speed", 5000) <= 480 else ""
        details = [
            f"{tpu['speed']} Mb/s{slow}" if "speed" in tpu else "",
            tpu.get("id", ""),
            f"{tpu['temperature_c']:.1f} C" if "temperature_c" in tpu else "",
        ]
        print(f"  :{index}  {tpu['type']:<3}  {tpu['path']}  " + "  ".join(d for d in details if d))
    for function in report.get("pci_without_driver", []):
        print(f"  PCIe Coral at {function} without its apex driver (edgenet doctor)")
    cpu, backend, library = report["cpu"], report["backend"], report["libedgetpu"]
    print(
        f"CPU: {cpu['model'] or '?'} ({cpu['machine']}, {cpu['cores']} cores)"
        + (f" on {cpu['board']}" if cpu.get("board") else "")
    )
    print(
        f"backend: {backend['name']} {backend['version']}"
        if backend.get("name")
        else f"backend: none ({backend['error']})"
    )
    print(
        f"libedgetpu: {library['path']}" + (f" ({library['version']})" if library.get("version") else "")
        if library["found"]
        else "libedgetpu: not installed"
    )


@app.command()
@handles_errors
def doctor(fmt: str = typer.Option("text", "--format", "-f", help="text | json.")):
    """Check this machine for edgenet: one line per check (ok / warn / fail) and the fix. Exit 1 on a fail."""
    from edgenet.doctor import FAIL, run_checks

    if fmt not in ("text", "json"):
        raise UsageError(f"unknown --format {fmt!r}; choose text or json")
    checks = run_checks()
    if fmt == "json":
        print(json.dumps([check.to_dict() for check in checks], indent=1))
    else:
        for check in checks:
            print(check.line(), flush=True)
    raise typer.Exit(1 if any(check.status == FAIL for check in checks) else 0)


# -- models -----------------------------------------------------------------------------------------


def _model_rows() -> list[dict]:
    from edgenet import zoo

    return [
        spec.to_dict(
            present=zoo.is_present(spec.artifact),
            edgetpu_present=zoo.is_present(spec.edgetpu) if spec.edgetpu else None,
        )
        for spec in zoo.catalog().values()
    ]


@models_app.command("list")
@handles_errors
def models_list(fmt: str = typer.Option("table", "--format", "-f", help="table | json.")):
    """Every model in the zoo, and whether it is in the local cache."""
    from edgenet import zoo

    rows = _model_rows()
    if fmt == "json":
        print(json.dumps(rows, indent=1))
        return
    if fmt != "table":
        raise UsageError(f"unknown --format {fmt!r}; choose table or json")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"edgenet model zoo (cache: {zoo.home() / 'models'})")
    for column in ("name", "family", "input", "quant", "MB", "present", "Edge TPU twin", "notes"):
        table.add_column(column)
    default = zoo.default_model()
    for row in rows:
        twin = "-" if row["edgetpu"] is None else ("present" if row["edgetpu_present"] else "available")
        size = f"{row['size'] / 1e6:.1f}" if row["size"] else "?"
        name = row["name"] + (" (default)" if row["name"] == default else "")
        note = "latency only (random weights)" if row["latency_only"] else row["notes"].split(". ")[0]
        table.add_row(
            name,
            row["family"],
            f"{row['input'][0]}",
            row["quant"],
            size,
            "yes" if row["present"] else "no",
            twin,
            note,
        )
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@models_app.command("pull")
@handles_errors
def models_pull(
    names: list[str] = typer.Argument(None, help="Zoo names (default: the default model)."),
    edgetpu: bool = typer.Option(False, "--edgetpu", help="Also pull the Edge TPU twins."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
):
    """Download, verify and cache models (the mirror first, then upstream)."""
    from edgenet import zoo

    for name in names or [zoo.default_model()]:
        spec = zoo.get_spec(name)
        artifacts = [spec.artifact] + ([spec.edgetpu] if edgetpu and spec.edgetpu else [])
        for artifact in artifacts:
            path = zoo.pull(artifact, force=force)
            say(f"{name}: {path}")


@models_app.command("path")
@handles_errors
def models_path(name: str = typer.Argument(None), edgetpu: bool = typer.Option(False, "--edgetpu")):
    """Print the local path of a model (pulling it if needed)."""
    from edgenet import zoo

    print(zoo.resolve(name, edgetpu=edgetpu).path)


@models_app.command("verify")
@handles_errors
def models_verify(
    names: list[str] = typer.Argument(None, help="Zoo names (default: every cached model)."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
):
    """Check cached models against the catalog's checksums. Exit 3 if any differ."""
    from edgenet import zoo

    specs = [zoo.get_spec(n) for n in names] if names else list(zoo.catalog().values())
    results = []
    for spec in specs:
        for artifact in filter(None, (spec.artifact, spec.edgetpu)):
            missing = not zoo.cache_path(artifact).exists()
            if missing and (not names or artifact is spec.edgetpu):
                continue  # verify checks what is cached; a twin nobody pulled is not a failure
            problem = f"not pulled: run edgenet models pull {spec.name}" if missing else zoo.verify(artifact)
            results.append(
                {"name": spec.name, "file": artifact.file, "ok": problem is None, "problem": problem}
            )
    if fmt == "json":
        print(json.dumps(results, indent=1))
    else:
        for row in results:
            say(
                f"{'ok  ' if row['ok'] else 'FAIL'} {row['name']}: {row['file']}"
                + (f" ({row['problem']})" if row["problem"] else ""),
                "" if row["ok"] else "red",
            )
        if not results:
            say("no cached models to verify (edgenet models pull NAME)")
    if any(not row["ok"] for row in results):
        raise typer.Exit(3)


@models_app.command("info")
@handles_errors
def models_info(
    name: str = typer.Argument(None, help="Zoo name or .tflite path (default: the default model)."),
    threads: int | None = ThreadsOption,
    fmt: str = typer.Option("table", "--format", "-f", help="table | json."),
):
    """What a model is: catalog entry, tensors, quantization, ops and delegate partitions."""
    from edgenet import zoo
    from edgenet.runtime import Engine, inspect_model_file

    resolved = zoo.resolve(name)
    info: dict = resolved.spec.to_dict(present=True) if resolved.spec else {"name": resolved.name}
    info["path"] = str(resolved.path)
    file_info = inspect_model_file(resolved.path)
    info["bytes"] = file_info.size
    engine = Engine(resolved.path, threads=threads or 1, file_info=file_info)
    info.update(
        {
            "backend": f"{engine.backend.name} {engine.backend.version}",
            "delegate": engine.delegate,
            "partitions": engine.partitions,
            "input_tensor": {
                "shape": [1, engine.input.height, engine.input.width, engine.input.channels],
                "dtype": engine.input.dtype,
                "scale": engine.input.scale,
                "zero_point": engine.input.zero_point,
                "value_range": list(engine.input.value_range),
                "range_from": engine.input.range_source,
            },
            "output_tensor": {
                "classes": engine.output.classes,
                "dtype": engine.output.dtype,
                "scale": engine.output.scale,
                "zero_point": engine.output.zero_point,
                "scores": "probabilities" if engine.output.probabilities else "logits (softmax applied)",
            },
            "ops": engine.op_counts(),
        }
    )
    if fmt == "json":
        print(json.dumps(info, indent=1))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        print(f"{key:>14}: {value}")


@app.command(hidden=True)
@handles_errors
def samples():
    """Print the folder of sample photos, pulling them (google-coral/test_data) if needed."""
    from edgenet import zoo

    print(zoo.sample_images())


app.command("learn")(learn)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
