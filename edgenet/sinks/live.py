"""The live view of a stream on a terminal (rich, stderr), refreshed 4 times a second from the run's
summary: fps, latency percentiles, drops, errors and the current result."""

from __future__ import annotations

from edgenet.console import printable
from edgenet.sinks import Sink


def _ms(values) -> str:
    return " / ".join("-" if v != v else f"{v:.2f}" for v in values)  # v != v: NaN (no frames yet)


class LiveView(Sink):
    def __init__(self, title: str):
        self.title = printable(title)
        self.summary = None
        self._live = None

    def __rich__(self):
        from rich.table import Table
        from rich.text import Text

        summary = self.summary
        recent = summary.recent()
        record = summary.last_record
        table = Table(title=Text(self.title), show_header=False, box=None, title_justify="left")
        table.add_column(justify="right", style="bold")
        table.add_column()
        where = (
            f"{record.get('frame')} ({record.get('source')})" if summary.count else "waiting for frames..."
        )
        table.add_row("frame", Text(printable(where)))
        table.add_row("fps", f"{recent['fps']:.1f} (last {recent['frames']} frames)")
        table.add_row("inference", f"p50/p90/p99 {_ms(recent['inference'])} ms")
        table.add_row("per frame", f"p50/p90/p99 {_ms(recent['total'])} ms")
        table.add_row("dropped", f"{summary.dropped} stale frames")
        last = f" (last: {summary.last_error})" if summary.last_error else ""
        table.add_row("errors", Text(printable(f"{summary.errors}{last}")))
        for rank, prediction in enumerate(record.get("top_k") or [], 1):
            table.add_row(f"#{rank}", Text(printable(f"{prediction['score']:.3f}  {prediction['label']}")))
        for detection in (record.get("detections") or [])[:5]:
            table.add_row("found", Text(printable(f"{detection['score']:.3f}  {detection['label']}")))
        return table

    def start(self, summary) -> None:
        from rich.console import Console
        from rich.live import Live

        self.summary = summary
        self._live = Live(self, console=Console(stderr=True), refresh_per_second=4, transient=True)
        self._live.start()

    def write(self, result) -> None:
        pass  # the summary (another sink) counts; this view only reads it

    def close(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None
