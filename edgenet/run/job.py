"""A run assembled from a command's options: where frames come from (images, videos, a camera), the model, the
sinks, the state and its lock; then the one loop, the summary and the exit code.

The commands (edgenet.cli) only parse options into a Job; everything below decides and runs.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import field

from edgenet.choices import RecordFormat
from edgenet.errors import UsageError
from edgenet.lightclass import lightclass
from edgenet.model import ClassifyOptions, ModelRequest
from edgenet.run.keep import KeepOptions
from edgenet.run.stop import StopSignals

OPENCV_PIXEL_LIMIT = 1 << 30  # OPENCV_IO_MAX_IMAGE_PIXELS's default


@lightclass
class InputOptions:
    """Where frames come from. Images: `paths` (files, folders, globs). Streams: `camera`, `videos`, or
    video files among `paths`."""

    paths: tuple[str, ...] = ()
    camera: str | None = None
    videos: tuple[str, ...] = ()
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    every: int = 1
    reconnect: int = 5
    max_frames: int | None = None
    duration: float | None = None
    fast_decode: bool = False
    max_pixels: int | None = None  # the largest image decoded (None: edgenet.imaging's default, 0: no cap)
    interval: float | None = None  # a live camera: seconds between snapshots (None: every frame it gives)
    watch: bool = False  # folders: go on with each new image as it finishes arriving, until stopped
    settle: float = 1.0  # --watch: a file unchanged this many seconds has finished arriving

    @property
    def pixel_cap(self) -> int | None:
        """The largest image decoded, for image_frames: None when there is no cap (--max-pixels 0)."""
        from edgenet.imaging import DEFAULT_MAX_PIXELS

        if self.max_pixels is None:
            return DEFAULT_MAX_PIXELS
        if self.max_pixels and self.max_pixels > OPENCV_PIXEL_LIMIT:  # OpenCV's own cap, read when cv2 loads
            os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(self.max_pixels))
        return self.max_pixels or None

    @property
    def streaming(self) -> bool:
        from edgenet.sources import is_video

        return bool(self.camera or self.videos) or any(is_video(path) for path in self.paths)

    def check(self) -> None:
        if self.max_pixels is not None and self.max_pixels < 0:
            raise UsageError(f"--max-pixels {self.max_pixels}: give a number of pixels, or 0 for no cap")
        if not self.paths and not self.camera and not self.videos:
            raise UsageError(
                "give images, folders or globs (e.g. edgenet classify photos/), --video or --camera"
            )
        if self.duration is not None and not self.duration > 0:
            raise UsageError(f"--duration {self.duration:g}: give a number of seconds above 0")
        if self.camera and (self.paths or self.videos):
            raise UsageError("--camera runs one live camera; run images and videos separately")
        if not self.streaming and (
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
        if self.watch and (self.streaming or not self.paths or not all(os.path.isdir(p) for p in self.paths)):
            raise UsageError("--watch takes folders (and goes on with each new image in them): give folders")
        if self.interval is not None and (not self.camera or not self.interval > 0):
            raise UsageError(
                "--interval S takes snapshots of a live camera every S seconds: use it with --camera"
            )
        if self.streaming and not self.camera and (self.width or self.height or self.fps):
            raise UsageError(
                "--width, --height and --fps set a camera's capture mode; use them with --camera"
            )


@lightclass
class OutputOptions:
    format: RecordFormat = RecordFormat.table
    output: str | None = None
    quiet: bool = False


@lightclass
class MqttOptions:
    address: str
    topic: str | None = None
    user: str | None = None
    password: str | None = None
    tls: bool = False
    ca: str | None = None
    every: int = 1
    on_change: bool = False
    discovery_prefix: str = "homeassistant"  # Home Assistant discovery for regions ("" : none)


@lightclass
class UnattendedOptions:
    """Incremental state and its lock, Prometheus textfile, MQTT."""

    state: str | None = None
    wait: bool = False
    prom_textfile: str | None = None
    prom_every: float = 15.0
    mqtt: MqttOptions | None = None

    def check(self) -> None:
        """Refuse unusable paths and addresses before any work, rather than at the first record."""
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
        if self.mqtt is not None:
            from edgenet.mqtt_options import check_options

            mqtt = self.mqtt
            check_options(
                mqtt.address, topic=mqtt.topic, tls=mqtt.tls, ca_file=mqtt.ca, discovery=mqtt.discovery_prefix
            )


@lightclass
class Job:
    model: ModelRequest = field(default_factory=ModelRequest)
    task: object = field(default_factory=ClassifyOptions)
    inputs: InputOptions = field(default_factory=InputOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    unattended: UnattendedOptions = field(default_factory=UnattendedOptions)
    keep: KeepOptions = field(default_factory=KeepOptions)  # --annotate, --save, --serve
    verb: str = "classifying"
    confirm: int = 3  # with regions: agreeing results in a row before a region's state changes

    @property
    def watchers(self) -> list:
        """What derives records from the frames' records: the regions' debounced states."""
        if not getattr(self.task, "regions", ()):
            return []
        from edgenet.run.states import RegionStates

        return [RegionStates(self.confirm)]

    def check(self) -> None:
        self.inputs.check()
        self.unattended.check()
        self._check_paths()
        if self.confirm < 1:
            raise UsageError(f"--confirm {self.confirm}: give 1 or more agreeing results")
        self.keep.check(self.inputs.streaming)
        if self.inputs.streaming:
            if self.unattended.state:
                raise UsageError("--state keeps track of image files; streams have no state to keep")
            if self.output.format == RecordFormat.table and self.output.output:
                raise UsageError(
                    "--output with --camera or --video needs --format jsonl or csv (a stream's table is only "
                    "the live view and the summary on stderr)"
                )

    def _check_paths(self) -> None:
        """--state, --output and --prom-textfile each need their own file; a state needs records that are
        written as they come (jsonl or csv), since it marks an image done once its record is written."""
        state, output = self.unattended.state, self.output.output
        named = [("--output", output), ("--prom-textfile", self.unattended.prom_textfile)]
        if state:
            from edgenet.state import check_state_path, state_files

            check_state_path(state)  # before its lock file is made beside it
            named = [("--state", path) for path in state_files(state)] + named
        for number, (option, path) in enumerate(named):
            for other, other_path in named[number + 1 :]:
                if option != other and _same_file(path, other_path):
                    raise UsageError(f"{option} and {other} name the same file {path}: give each its own")
        if state and self.output.format == RecordFormat.table:
            raise UsageError(
                "--state marks images done as their records are written, and a table is written only at the "
                "end: use --format jsonl or csv with --state"
            )


def _same_file(one: str | None, other: str | None) -> bool:
    return bool(one and other) and os.path.realpath(one) == os.path.realpath(other)


def run_job(job: Job) -> int:
    """The run a command asked for; returns the exit code (errors that stop it are raised, one line each)."""
    job.check()
    with StopSignals() as stop, contextlib.ExitStack() as held:  # a stop while the model loads is clean too
        if job.inputs.streaming:
            from edgenet.run.streams import run_stream

            return run_stream(job, stop, held)
        from edgenet.run.images import run_images

        return run_images(job, stop, held)
