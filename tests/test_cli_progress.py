"""The progress display of long CLI commands, driven directly (the CLI runs are in
tests/test_cli_instruments.py)."""

from __future__ import annotations

import io
import re
import time

import pytest

from app.cli_progress import BarProgress, LineProgress, import_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def visible(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n")


class TestImportProgress:
    def test_a_terminal_gets_the_bar_and_anything_else_lines(self) -> None:
        assert isinstance(import_progress(Terminal(), "f.csv"), BarProgress)
        assert isinstance(import_progress(io.StringIO(), "f.csv"), LineProgress)


class TestBarProgress:
    def test_shows_rows_rate_and_time_left_while_checking(self) -> None:
        screen = Terminal()
        with BarProgress(screen, "f.csv") as progress:
            progress.phase("checking", 10_000)
            progress.advance(2_000)
            time.sleep(0.2)
            progress.advance(4_000)
            progress._progress.refresh()
            middle = visible(screen.getvalue())
            progress.advance(10_000)
            progress.phase("writing", None)
        assert re.search(r"checking f\.csv .* 4,000/10,000 +[\d,]+ rows/s +ETA \d+:\d\d", middle)
        final = visible(screen.getvalue())
        assert re.search(r"checking f\.csv .* 10,000/10,000 +[\d,]+ rows/s", final)
        assert "writing f.csv" in final


class TestLineProgress:
    def test_a_line_at_most_every_interval(self, monkeypatch: pytest.MonkeyPatch) -> None:
        out = io.StringIO()
        progress = LineProgress(out, "f.csv")
        progress.phase("checking", 1_000)
        progress.advance(100)
        assert out.getvalue() == ""  # a short import prints only its summary
        monkeypatch.setattr(LineProgress, "interval", 0.0)
        progress.advance(250)
        progress.phase("writing", None)
        lines = out.getvalue().splitlines()
        assert re.fullmatch(
            r"checking f\.csv: 250 of 1,000 rows \(25%\), [\d,]+ rows/s, ETA \d+ s", lines[0]
        )
        assert lines[1:] == ["writing f.csv"]
