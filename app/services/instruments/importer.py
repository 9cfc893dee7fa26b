"""Import a Kite Connect instruments dump (CSV) into the ``instruments`` table.

Every row is checked before anything is written; bad rows are reported with their line
number and reason and skipped, the good ones are upserted in one transaction. A row whose
``EXCHANGE:TRADINGSYMBOL`` already belongs to another token is refused rather than allowed to
break the unique key mid-transaction. ``delist_missing`` marks instruments absent from the
file as delisted (a row that was refused still counts as present: a typo must not delist).
"""

from __future__ import annotations

import csv
import io
import logging
import operator
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from app.errors import ImportFileInvalid
from app.store.instruments import DECIMAL_PRECISION, DECIMAL_SCALE, InstrumentStore

log = logging.getLogger(__name__)

BUNDLED_INSTRUMENTS_CSV = Path(__file__).resolve().parents[2] / "data" / "instruments.csv"
COLUMNS = (
    "instrument_token",
    "exchange_token",
    "tradingsymbol",
    "name",
    "last_price",
    "expiry",
    "strike",
    "tick_size",
    "lot_size",
    "instrument_type",
    "segment",
    "exchange",
)
_INTEGER_DIGITS = DECIMAL_PRECISION - DECIMAL_SCALE
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.&\-]*")
# Kite index names have inner spaces ("NIFTY 50"); ':' would break EXCHANGE:TRADINGSYMBOL.
_SYMBOL = re.compile(r"[A-Za-z0-9&][A-Za-z0-9_.&\- ]*")
_MAX_TOKEN = 2**63 - 1
#: Rows between two progress reports: rare enough to cost nothing per row (a counter test),
#: often enough for a bar that moves several times a second.
PROGRESS_EVERY = 2048


class ImportProgress(Protocol):
    """What an import tells its caller while it runs (the CLI draws a bar or prints lines)."""

    def phase(self, name: str, total: int | None) -> None:
        """A new phase begins (``checking`` rows, ``writing`` them); ``total`` when known."""

    def advance(self, done: int) -> None:
        """``done`` units of the current phase are finished."""


class RowError(ValueError):
    """One row's problem, worded for the operator."""


@dataclass(frozen=True, slots=True)
class RejectedRow:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    source: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    delisted: int = 0
    rejected: list[RejectedRow] = field(default_factory=list)
    duration_seconds: float = 0.0

    def summary(self) -> str:
        return (
            f"{self.source}: {self.rows} rows, {self.inserted} inserted, {self.updated} updated, "
            f"{len(self.rejected)} rejected, {self.delisted} delisted"
        )


def _integer(raw: str, column: str, minimum: int) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or not minimum <= int(raw):
        raise RowError(f"{column} {raw!r} must be an integer >= {minimum}")
    value = int(raw)
    if value > _MAX_TOKEN:
        raise RowError(f"{column} {raw!r} is too large")
    return value


def _decimal(raw: str, column: str, *, positive: bool) -> Decimal:
    whole, dot, frac = raw.partition(".")
    if not (
        raw.isascii()
        and whole.isdigit()
        and len(whole) <= _INTEGER_DIGITS
        and (not dot or frac.isdigit())
    ):
        raise RowError(f"{column} {raw!r} must be a plain non-negative decimal")
    if len(frac) > DECIMAL_SCALE and frac[DECIMAL_SCALE:].strip("0"):
        raise RowError(f"{column} {raw!r} has more than {DECIMAL_SCALE} decimals")
    value = Decimal(raw)
    if positive and not value:
        raise RowError(f"{column} must be greater than zero")
    return value


def _code(raw: str, column: str, max_length: int, pattern: re.Pattern[str] = _CODE) -> str:
    if not raw.isascii() or len(raw) > max_length or not pattern.fullmatch(raw):
        raise RowError(f"{column} {raw!r} must be 1-{max_length} letters, digits or _ . & -")
    return raw


def _expiry(raw: str) -> date | None:
    if not raw:
        return None
    try:
        if len(raw) != 10:
            raise ValueError(raw)
        return date.fromisoformat(raw)
    except ValueError:
        raise RowError(f"expiry {raw!r} must be empty or YYYY-MM-DD") from None


def parse_row(fields: Sequence[str]) -> dict[str, Any]:
    """One record, its fields in ``COLUMNS`` order, as a table row; raises ``RowError``
    naming the first problem."""
    (token, exchange_token, symbol, name, last_price, expiry, strike, tick, lot, itype, segment,
     exchange) = map(str.strip, fields)  # fmt: skip
    if len(name) > 200:
        raise RowError("name is longer than 200 characters")
    return {
        "instrument_token": _integer(token, "instrument_token", 1),
        "exchange_token": _integer(exchange_token, "exchange_token", 0),
        "exchange": _code(exchange, "exchange", 16).upper(),
        "tradingsymbol": _code(symbol, "tradingsymbol", 64, _SYMBOL),
        "name": name,
        "instrument_type": _code(itype, "instrument_type", 16).upper(),
        "segment": _code(segment, "segment", 32).upper(),
        "tick_size": _decimal(tick, "tick_size", positive=True),
        "lot_size": _decimal(lot, "lot_size", positive=True),
        "expiry": _expiry(expiry),
        "strike": _decimal(strike or "0", "strike", positive=False),
        "last_price": _decimal(last_price or "0", "last_price", positive=False),
    }


class InstrumentImporter:
    def __init__(self, *, store: InstrumentStore) -> None:
        self._store = store

    async def import_csv(
        self,
        path: Path,
        *,
        delist_missing: bool = False,
        progress: ImportProgress | None = None,
    ) -> ImportReport:
        try:
            with path.open(encoding="utf-8-sig", newline="") as handle:
                content = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise ImportFileInvalid(f"cannot read {path}: {exc}") from None
        return await self.import_text(
            content, source=str(path), delist_missing=delist_missing, progress=progress
        )

    async def import_text(
        self,
        content: str,
        *,
        source: str = "<text>",
        delist_missing: bool = False,
        progress: ImportProgress | None = None,
    ) -> ImportReport:
        started = time.perf_counter()
        report = ImportReport(source=source)
        rows, present = self._parse(content, report, progress)
        if delist_missing and not rows:
            raise ImportFileInvalid(
                f"{source} has no valid rows; refusing to delist every instrument"
            )
        existing = await self._store.keys()
        owners = {(exchange, symbol): token for token, (exchange, symbol, _) in existing.items()}
        accepted = []
        for line, row in rows:
            token = row["instrument_token"]
            owner = owners.get((row["exchange"], row["tradingsymbol"]))
            if owner is not None and owner != token:
                report.rejected.append(
                    RejectedRow(
                        line,
                        f"{row['exchange']}:{row['tradingsymbol']} already belongs to "
                        f"instrument_token {owner}",
                    )
                )
                continue
            accepted.append(row)
            if token in existing:
                report.updated += 1
            else:
                report.inserted += 1
        delist = []
        if delist_missing:
            delist = [
                token
                for token, (_, _, status) in existing.items()
                if token not in present and status != "delisted"
            ]
        if progress is not None:
            progress.phase("writing", None)  # one COPY and upsert: nothing to count inside
        await self._store.apply_import(accepted, delist=delist, now=datetime.now(UTC))
        report.delisted = len(delist)
        report.rejected.sort(key=lambda rejected: rejected.line)
        report.duration_seconds = time.perf_counter() - started
        log.info(
            "instruments imported",
            extra={
                "source": source,
                "inserted": report.inserted,
                "updated": report.updated,
                "rejected": len(report.rejected),
                "delisted": report.delisted,
            },
        )
        return report

    @staticmethod
    def _parse(
        content: str, report: ImportReport, progress: ImportProgress | None = None
    ) -> tuple[list[tuple[int, dict[str, Any]]], set[int]]:
        reader = csv.reader(io.StringIO(content, newline=""))
        header = [name.strip() for name in next(reader, [])]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise ImportFileInvalid(
                f"{report.source}: missing column(s) {', '.join(missing)}; "
                f"expected the Kite Connect header {','.join(COLUMNS)}"
            )
        if progress is not None:
            # Lines, less the header: exact unless a quoted field spans lines, which only
            # makes the estimate of the time left a little long.
            progress.phase("checking", max(content.count("\n") - 1, 0))
        width = len(header)
        positions = [header.index(column) for column in COLUMNS]
        token_at = positions[0]
        pick = operator.itemgetter(*positions)  # the record's fields in COLUMNS order
        rows: list[tuple[int, dict[str, Any]]] = []
        present: set[int] = set()
        token_lines: dict[int, int] = {}
        symbol_lines: dict[tuple[str, str], int] = {}
        for record in reader:
            line = reader.line_num
            if not record:
                continue
            report.rows += 1
            if progress is not None and not report.rows % PROGRESS_EVERY:
                progress.advance(report.rows)
            try:
                if len(record) != width:
                    raise RowError(f"expected {width} fields, found {len(record)}")
                raw_token = record[token_at].strip()
                if raw_token.isascii() and raw_token.isdigit():
                    present.add(int(raw_token))
                row = parse_row(pick(record))
                key = (row["exchange"], row["tradingsymbol"])
                if row["instrument_token"] in token_lines:
                    first = token_lines[row["instrument_token"]]
                    raise RowError(f"instrument_token repeats line {first}")
                if key in symbol_lines:
                    raise RowError(f"{key[0]}:{key[1]} repeats line {symbol_lines[key]}")
            except RowError as exc:
                report.rejected.append(RejectedRow(line, str(exc)))
                continue
            token_lines[row["instrument_token"]] = line
            symbol_lines[key] = line
            rows.append((line, row))
        if progress is not None:
            progress.advance(report.rows)
        return rows, present

    async def seed_if_empty(self, path: Path) -> ImportReport | None:
        """Import ``path`` when the table has no instruments (first start); else nothing."""
        if await self._store.count() > 0:
            return None
        report = await self.import_csv(path)
        log.info("seeded the instrument registry", extra={"source": str(path)})
        for rejected in report.rejected:
            log.warning(
                "seed row skipped", extra={"line": rejected.line, "reason": rejected.reason}
            )
        return report
