"""Secrets hygiene: every key and webhook secret the tests create, and the logs they wrote.

``remember`` registers a secret made by a test (API keys, key files, secrets returned by a
service in a subprocess); ``app.logs._secrets`` adds every secret the in-process app saw
(keys it loaded, webhook secrets it issued). ``LogCapture`` writes every log record of the
session to a file *before* any redaction, so the check below is about what the code tries
to log, not about the redaction filter catching it. ``watch`` adds a file (a subprocess
service's log) to the scan. ``leaks`` is the check: which secrets appear in which file.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_remembered: set[str] = set()
_watched: set[Path] = set()
_MIN_LENGTH = 8  # shorter strings would match by chance (app.logs ignores them too)
_STANDARD_FIELDS = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime"}
)


def remember(secret: str) -> str:
    """Register a secret a test created; returns it, for use inline."""
    if len(secret) >= _MIN_LENGTH:
        _remembered.add(secret)
    return secret


def remember_in(body: Any) -> None:
    """Register every webhook secret (``whsec_…``) found in a decoded JSON response."""
    if isinstance(body, dict):
        for key, value in body.items():
            if key == "secret" and isinstance(value, str):
                remember(value)
            else:
                remember_in(value)
    elif isinstance(body, list):
        for item in body:
            remember_in(item)


def watch(path: Path) -> None:
    """Scan this file (e.g. a ServiceProcess log) at the end of the session too."""
    _watched.add(path)


def known_secrets() -> set[str]:
    from app import logs

    found = _remembered | {s for s in logs._secrets if len(s) >= _MIN_LENGTH}
    # A whsec_ secret contains its registered base64 part: looking for the shorter is enough.
    return {s for s in found if not any(o != s and o in s for o in found)}


def watched_files() -> list[Path]:
    return sorted(p for p in _watched if p.exists())


def leaks(paths: Iterable[Path], secrets: Iterable[str]) -> dict[Path, list[str]]:
    """For each file that holds any of ``secrets``: their short prefixes (never whole)."""
    wanted = sorted(set(secrets))
    found: dict[Path, list[str]] = {}
    for path in paths:
        text = path.read_text(encoding="utf-8", errors="replace")
        hits = [f"{s[:6]}… ({len(s)} chars)" for s in wanted if s in text]
        if hits:
            found[path] = hits
    return found


class LogCapture(logging.Handler):
    """Every record, formatted with its extra fields and traceback, appended to ``path``."""

    def __init__(self, path: Path) -> None:
        super().__init__(logging.NOTSET)
        self.path = path
        self._file = path.open("a", encoding="utf-8")
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what there is
            message = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD_FIELDS}
        line = f"{record.levelname} {record.name} {message}"
        if extras:
            line += f" {extras!r}"
        if record.exc_info:
            line += "\n" + self._formatter.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + record.stack_info
        self._file.write(line + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()
        super().close()


def install(path: Path, level: int = logging.INFO) -> LogCapture:
    """Capture the root logger's records from now on (at ``level`` at least: INFO is what
    production logs by default)."""
    handler = LogCapture(path)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level > level:
        root.setLevel(level)
    return handler


def uninstall(handler: LogCapture) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()
