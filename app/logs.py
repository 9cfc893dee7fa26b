"""Logging: JSON or text lines, each carrying the request id of the request that wrote it.

The request id lives in a context variable set by ``RequestContextMiddleware``; a filter
copies it onto every record, so service code logs as usual and still gets correlated.
Secrets never reach a log: keys are shown by fingerprint only, and the redaction filter
is a second line of defence for values registered at runtime (``register_secret``).
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from contextvars import ContextVar
from pathlib import Path

from pythonjsonlogger.json import JsonFormatter

from app.settings import LogFormat, LogSettings

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

_secrets: set[str] = set()
_MIN_SECRET_LEN = 8
_ROTATE_BYTES = 100 * 1024 * 1024
_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"


def register_secret(value: str) -> None:
    """Make sure ``value`` never appears in a log line (replaced by ``***``)."""
    if len(value) >= _MIN_SECRET_LEN:
        _secrets.add(value)


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if _secrets:
            message = record.getMessage()
            if any(secret in message for secret in _secrets):
                for secret in _secrets:
                    message = message.replace(secret, "***")
                record.msg, record.args = message, None
        return True


def configure_logging(settings: LogSettings) -> None:
    """Install handlers on the root logger; idempotent (replaces our previous handlers)."""
    formatter: logging.Formatter
    if settings.format is LogFormat.JSON:
        formatter = JsonFormatter(
            _JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    else:
        formatter = logging.Formatter(_TEXT_FORMAT)

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.dir is not None:
        Path(settings.dir).mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(
                Path(settings.dir) / "ticker-service.log",
                maxBytes=_ROTATE_BYTES,
                backupCount=5,
                encoding="utf-8",
            )
        )

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_ticker", False)]:
        root.removeHandler(old)
        old.close()
    context = ContextFilter()
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(context)
        handler._ticker = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.level)
    # uvicorn's own access log is replaced by ours (it has the request id and duration).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
