"""An immutable, fully built view of every instrument: lookups and search.

The registry builds a new snapshot off to the side and swaps one reference, so a reader holds
either the old snapshot or the new one, never a half-loaded one. Nothing here mutates after
``__init__``; a status change builds a new snapshot (``with_instrument``).
"""

from __future__ import annotations

import base64
import binascii
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from operator import attrgetter
from typing import Final, Protocol

from app.errors import AmbiguousSymbol, InstrumentNotTradable, UnknownInstrument, ValidationFailed
from app.services.instruments.model import Instrument, InstrumentStatus

_AMBIGUOUS: Final = object()
_DELISTED: Final = InstrumentStatus.DELISTED
_by_token = attrgetter("instrument_token")
_CURSOR_PREFIX = "t:"


@dataclass(frozen=True, slots=True)
class InstrumentFilter:
    exchange: str | None = None
    instrument_type: str | None = None
    segment: str | None = None
    q: str | None = None
    status: InstrumentStatus | None = None

    def matches(self, instrument: Instrument) -> bool:
        if self.status is not None and instrument.status is not self.status:
            return False
        if self.exchange is not None and instrument.exchange != self.exchange:
            return False
        if self.instrument_type is not None and instrument.instrument_type != self.instrument_type:
            return False
        if self.segment is not None and instrument.segment != self.segment:
            return False
        if self.q is not None:
            return (
                self.q in instrument.tradingsymbol.casefold()
                or self.q in instrument.name.casefold()
            )
        return True

    @classmethod
    def create(
        cls,
        *,
        exchange: str | None = None,
        instrument_type: str | None = None,
        segment: str | None = None,
        q: str | None = None,
        status: InstrumentStatus | None = None,
    ) -> InstrumentFilter:
        """Exchange, type and segment codes are upper case; ``q`` is case-insensitive."""
        return cls(
            exchange.upper() if exchange else None,
            instrument_type.upper() if instrument_type else None,
            segment.upper() if segment else None,
            q.casefold() if q else None,
            status,
        )


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Instrument]
    next_cursor: str | None


def encode_cursor(token: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{token}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError(cursor)
        return int(text[len(_CURSOR_PREFIX) :])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed("cursor is not one this service issued") from None


class SnapshotSource(Protocol):
    """What reads instruments needs of the registry: its current snapshot
    (``InstrumentRegistry``; a fixed one in tests)."""

    @property
    def snapshot(self) -> RegistrySnapshot: ...


class RegistrySnapshot:
    __slots__ = ("_by_bare", "_by_symbol", "_by_token", "_items", "_tokens", "counts", "loaded_at")

    def __init__(self, instruments: Iterable[Instrument], loaded_at: datetime | None) -> None:
        items = sorted(instruments, key=_by_token)
        self._items: tuple[Instrument, ...] = tuple(items)
        self._tokens = [i.instrument_token for i in items]
        self._by_token = {i.instrument_token: i for i in items}
        self._by_symbol = {i.symbol: i for i in items}
        self.loaded_at = loaded_at
        # A bare symbol resolves when one exchange lists it; listings still trading win over
        # delisted ones, so a dead BSE line does not make the live NSE one ambiguous.
        any_listing: dict[str, object] = {}
        live: dict[str, object] = {}
        counts = dict.fromkeys(InstrumentStatus, 0)
        for instrument in items:
            counts[instrument.status] += 1
            symbol = instrument.tradingsymbol
            any_listing[symbol] = instrument if symbol not in any_listing else _AMBIGUOUS
            if instrument.status is not _DELISTED:
                live[symbol] = instrument if symbol not in live else _AMBIGUOUS
        self._by_bare = {**any_listing, **live}
        self.counts = {status.value: count for status, count in counts.items()}

    @classmethod
    def empty(cls) -> RegistrySnapshot:
        return cls((), None)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[Instrument]:
        return iter(self._items)

    def get(self, token: int) -> Instrument | None:
        return self._by_token.get(token)

    def instrument(self, token: int) -> Instrument:
        found = self._by_token.get(token)
        if found is None:
            raise UnknownInstrument(f"no instrument with instrument_token {token}")
        return found

    def lookup(self, symbol: str) -> Instrument:
        """``EXCHANGE:TRADINGSYMBOL``, a bare tradingsymbol or an instrument token in digits,
        whatever its status: every route, query filter and WebSocket request that takes a
        symbol resolves it here.

        Digits are a token first (clients holding Kite tokens send them as they are); a
        tradingsymbol made of digits stays reachable as ``EXCHANGE:TRADINGSYMBOL``, or bare
        when no instrument has that token.
        """
        found = self._by_symbol.get(symbol)
        if found is not None:
            return found
        if type(symbol) is not str or not symbol or len(symbol) > 100:
            raise UnknownInstrument("symbol must be EXCHANGE:TRADINGSYMBOL")
        if symbol.isascii() and symbol.isdigit():
            found = self._by_token.get(int(symbol))
            if found is not None:
                return found
        if ":" in symbol:
            found = self._by_symbol.get(symbol.upper())
            if found is None:
                raise UnknownInstrument(f"unknown instrument {symbol}")
            return found
        bare = self._by_bare.get(symbol)
        if bare is None:
            bare = self._by_bare.get(symbol.upper())
        if bare is None:
            raise UnknownInstrument(f"unknown instrument {symbol}")
        if bare is _AMBIGUOUS:
            raise AmbiguousSymbol(
                f"{symbol} is listed on several exchanges; use EXCHANGE:{symbol.upper()}"
            )
        assert isinstance(bare, Instrument)
        return bare

    def resolve(self, symbol: str) -> Instrument:
        """The instrument an order for ``symbol`` goes to; delisted ones are refused (halted
        ones resolve: the order path decides what a halt means)."""
        found = self._by_symbol.get(symbol)
        if found is None:
            found = self.lookup(symbol)
        if found.status is _DELISTED:
            raise InstrumentNotTradable(f"{found.symbol} is delisted")
        return found

    def search(self, where: InstrumentFilter, *, limit: int, cursor: str | None = None) -> Page:
        """Instruments matching ``where`` in token order, ``limit`` at a time."""
        start = bisect_right(self._tokens, decode_cursor(cursor)) if cursor else 0
        matching = (i for i in islice(self._items, start, None) if where.matches(i))
        items = list(islice(matching, limit + 1))
        if len(items) > limit:
            del items[limit:]
            return Page(items, encode_cursor(items[-1].instrument_token))
        return Page(items, None)

    def with_instrument(self, instrument: Instrument) -> RegistrySnapshot:
        """A copy with ``instrument`` replacing the one with its token (which must exist).

        Copies the indexes at C speed instead of rebuilding them: an admin halt at 100,000
        instruments costs a few milliseconds of the event loop, not a full rebuild.
        """
        token = instrument.instrument_token
        old = self._by_token[token]
        if old.symbol != instrument.symbol:
            raise ValueError("with_instrument changes attributes, not identity")
        clone = object.__new__(RegistrySnapshot)
        items = list(self._items)
        items[bisect_right(self._tokens, token) - 1] = instrument
        clone._items = tuple(items)
        clone._tokens = self._tokens  # same tokens, and never mutated
        clone._by_token = {**self._by_token, token: instrument}
        clone._by_symbol = {**self._by_symbol, instrument.symbol: instrument}
        listings = [i for i in clone._items if i.tradingsymbol == instrument.tradingsymbol]
        live = [i for i in listings if i.tradable] or listings
        clone._by_bare = {
            **self._by_bare,
            instrument.tradingsymbol: live[0] if len(live) == 1 else _AMBIGUOUS,
        }
        counts = dict(self.counts)
        counts[old.status.value] -= 1
        counts[instrument.status.value] += 1
        clone.counts = counts
        clone.loaded_at = self.loaded_at
        return clone
