"""Seeing and keeping what the model saw: annotated output, evidence on a condition, the live preview.
Options any command with frames can take (`KeepOptions`, from edgenet.cli.keeping), and the sinks they make
(`keep_sinks`), placed around the data writer: evidence before it (the record names the saved file), the
annotated output and the preview after it (the preview's linger must not hold back the table)."""

from __future__ import annotations

import os
from dataclasses import field

from edgenet.errors import UsageError
from edgenet.lightclass import lightclass


@lightclass
class KeepOptions:
    annotate: str | None = None  # a folder, or a video file name (.mp4 .m4v .mov .mkv .avi)
    save_dir: str | None = None
    save_when: tuple = ()  # edgenet.sinks.conditions.Condition, any of them
    save_max_mb: float | None = None
    serve: str | None = None  # [HOST:]PORT
    serve_fps: float = 5.0
    serve_token: str | None = None
    serve_linger: float = 0.0  # seconds the preview stays up after the run (inf: until Ctrl-C)

    def check(self, streaming: bool) -> None:
        """Usage errors before any work."""
        if self.save_dir and not self.save_when:
            raise UsageError(
                "--save DIR needs --save-when COND: label:NAME[>=SCORE], change, below:SCORE or "
                "every:DURATION"
            )
        if not self.save_dir and (self.save_when or self.save_max_mb is not None):
            raise UsageError("--save-when and --save-max-mb go with --save DIR (where the evidence goes)")
        if self.save_max_mb is not None and not self.save_max_mb > 0:
            raise UsageError(f"--save-max-mb {self.save_max_mb:g}: give a number of megabytes above 0")
        if not self.serve and (self.serve_token or self.serve_linger):
            raise UsageError("--serve-token and --serve-linger go with --serve [HOST:]PORT")
        if self.serve:
            from edgenet.sinks.preview import parse_address

            parse_address(self.serve)
            if self.serve_linger != self.serve_linger:  # nan
                raise UsageError("--serve-linger nan: give seconds, or inf to stay up until Ctrl-C")
            if self.serve_token is not None and not self.serve_token.strip():
                raise UsageError("--serve-token is empty: give a token, or leave the option out for none")
        if self.annotate:
            self._check_annotate(streaming)

    def _check_annotate(self, streaming: bool) -> None:
        from edgenet.sinks.annotate import output_kind

        if output_kind(self.annotate) == "folder":
            if os.path.exists(self.annotate) and not os.path.isdir(self.annotate):
                raise UsageError(f"--annotate {self.annotate}: a file is in the way of the folder")
            return
        if not streaming:
            raise UsageError(
                f"--annotate {self.annotate}: a video is made from a stream (--video, --camera); for images "
                "give a folder (one annotated JPEG per image)"
            )
        folder = os.path.dirname(os.path.abspath(self.annotate))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise UsageError(f"--annotate {self.annotate}: needs an existing, writable folder")


@lightclass
class KeptSinks:
    """`before`: sinks that go before the data writer (they add to the record, or what they write must exist
    once the record does); `after`: after it."""

    before: tuple = field(default_factory=tuple)
    after: tuple = field(default_factory=tuple)


def keep_sinks(keep: KeepOptions, model, *, inputs, quiet: bool = False, stop=None) -> KeptSinks:
    """The sinks `keep` asks for, once the model is open. `inputs`: the run's edgenet.run.job.InputOptions;
    `stop`: the run's edgenet.run.stop.StopSignals (Ctrl-C ends the preview's linger)."""
    before, after = [], []
    streaming = inputs.streaming
    if keep.save_dir:
        from edgenet.sinks.evidence import EvidenceSink

        before.append(EvidenceSink(keep.save_dir, keep.save_when, keep.save_max_mb))
    if keep.annotate:
        from edgenet.sinks.annotate import AnnotatedImages, AnnotatedVideo, output_kind

        if output_kind(keep.annotate) == "video":
            after.append(AnnotatedVideo(keep.annotate, every=inputs.every))
        else:
            # before the record: a run killed between the two redoes both (--state marks an image done
            # after its record), instead of leaving a record whose annotated image never comes
            before.append(AnnotatedImages(keep.annotate, streaming=streaming))
    if keep.serve:
        from edgenet.sinks.preview import PreviewSink, stale_after

        after.append(
            PreviewSink(
                keep.serve,
                fps=keep.serve_fps,
                token=keep.serve_token,
                streaming=streaming,
                info=model.info,
                linger=keep.serve_linger,
                stop=stop,
                quiet=quiet,
                stale=stale_after(watch=inputs.watch, interval=inputs.interval),
            )
        )
    return KeptSinks(tuple(before), tuple(after))
