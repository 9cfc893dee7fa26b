"""Progress of a long CLI command (``instruments import``): a live bar on a terminal, plain
lines otherwise.

The bar (rich) shows rows checked, their rate and the time left; it redraws from its own
thread a few times a second, so the import only bumps a counter every few thousand rows
(``PROGRESS_EVERY``). When stdout is a file or a pipe (CI, cron, ``| tee``) there is no
cursor to move: a line at most every ``LineProgress.interval`` seconds says the same, so a
short import prints nothing but its summary.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
)
from rich.text import Text


class _CountColumn(ProgressColumn):
    """Rows done of the total, their rate and the time left; blank for a phase that is not
    counted (writing: one COPY and upsert)."""

    def render(self, task: Task) -> Text:
        if task.total is None or not task.fields.get("counted"):
            return Text("")
        speed = task.finished_speed or task.speed
        left = task.time_remaining
        return Text.assemble(
            f"{int(task.completed):,}/{int(task.total):,}",
            ("" if speed is None else f"  {speed:,.0f} rows/s", "progress.data.speed"),
            (
                "" if left is None or task.finished else f"  ETA {_clock(left)}",
                "progress.remaining",
            ),
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}:{secs:02d}"


class BarProgress:
    """A rich progress bar on ``stream`` (a terminal)."""

    def __init__(self, stream: TextIO, label: str) -> None:
        self._label = label
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=16),
            _CountColumn(),
            console=Console(file=stream),
            refresh_per_second=8,
        )
        self._task: TaskID | None = None

    def phase(self, name: str, total: int | None) -> None:
        self._finish_task()
        self._task = self._progress.add_task(
            f"{name} {self._label}", total=total, counted=total is not None
        )

    def advance(self, done: int) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done)

    def _finish_task(self) -> None:
        if self._task is None:
            return
        task = self._progress.tasks[-1]
        # The line count was an estimate (blank lines, multi-line fields): end at what was read.
        self._progress.update(self._task, total=task.completed or task.total, completed=None)
        self._progress.stop_task(self._task)

    def __enter__(self) -> BarProgress:
        self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is not None:  # the error message says it all: take the bar away
            self._progress.live.transient = True
        elif self._task is not None and self._progress.tasks[-1].total is None:
            self._progress.update(self._task, total=1, completed=1)  # uncounted: a full bar
        self._progress.stop()


class LineProgress:
    """Plain lines on ``stream`` (not a terminal), at most one every ``interval`` seconds."""

    interval = 2.0

    def __init__(self, stream: TextIO, label: str) -> None:
        self._stream = stream
        self._label = label
        self._name = ""
        self._total: int | None = None
        self._started = self._phase_started = self._last_line = time.monotonic()

    def phase(self, name: str, total: int | None) -> None:
        self._name, self._total = name, total
        self._phase_started = time.monotonic()
        # A long import names each new phase, since the last one may say nothing for a while.
        if self._phase_started - self._started >= self.interval:
            self._line(f"{name} {self._label}")

    def advance(self, done: int) -> None:
        now = time.monotonic()
        if not self._due(now):
            return
        rate = done / max(now - self._phase_started, 1e-9)
        text = f"{self._name} {self._label}: {done:,}"
        if self._total:
            left = max(self._total - done, 0) / rate if rate else 0.0
            text += f" of {self._total:,} rows ({100 * done / self._total:.0f}%)"
            text += f", {rate:,.0f} rows/s, ETA {left:.0f} s"
        else:
            text += f" rows, {rate:,.0f} rows/s"
        self._line(text)

    def _due(self, now: float) -> bool:
        return now - self._last_line >= self.interval

    def _line(self, text: str) -> None:
        self._last_line = time.monotonic()
        print(text, file=self._stream, flush=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *_exc: object) -> None:
        return None


def import_progress(stream: TextIO, label: str) -> BarProgress | LineProgress:
    return BarProgress(stream, label) if stream.isatty() else LineProgress(stream, label)
