from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from app.errors import AmbiguousSymbol, InstrumentNotTradable, UnknownInstrument, ValidationFailed
from app.services.instruments.model import Instrument, InstrumentStatus
from app.services.instruments.snapshot import (
    InstrumentFilter,
    RegistrySnapshot,
    decode_cursor,
    encode_cursor,
)

NOW = datetime(2026, 11, 22, tzinfo=UTC)


def inst(token: int, exchange: str, symbol: str, **overrides: Any) -> Instrument:
    values: dict[str, Any] = {
        "instrument_token": token,
        "exchange_token": token,
        "exchange": exchange,
        "tradingsymbol": symbol,
        "name": overrides.pop("name", symbol.title()),
        "instrument_type": "EQ",
        "segment": exchange,
        "tick_size": Decimal("0.05"),
        "lot_size": Decimal("1"),
        "expiry": None,
        "strike": Decimal(0),
        "last_price": Decimal(0),
    }
    values.update(overrides)
    return Instrument.create(**values)


@pytest.fixture
def snapshot() -> RegistrySnapshot:
    return RegistrySnapshot(
        [
            inst(3, "BSE", "INFY", name="Infosys Ltd."),
            inst(1, "NSE", "INFY", name="Infosys"),
            inst(2, "NSE", "TCS", name="Tata Consultancy"),
            inst(4, "NSE", "WIPRO"),
            inst(5, "NSE", "OLDCO", status="delisted"),
            inst(6, "BSE", "OLDCO"),
            inst(7, "NSE", "GONE", status="delisted"),
            inst(8, "BSE", "GONE", status="delisted"),
            inst(9, "NSE", "HALTCO", status="halted"),
            inst(
                10,
                "NFO",
                "NIFTY36NOVFUT",
                name="NIFTY",
                instrument_type="FUT",
                segment="NFO-FUT",
                lot_size=Decimal(50),
            ),
        ],
        NOW,
    )


class TestLookups:
    def test_by_exchange_symbol_and_by_token(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.resolve("NSE:INFY").instrument_token == 1
        assert snapshot.resolve("BSE:INFY").instrument_token == 3
        assert snapshot.instrument(2).tradingsymbol == "TCS"
        assert snapshot.get(2) is snapshot.instrument(2)
        assert snapshot.get(999) is None
        assert len(snapshot) == 10
        assert [i.instrument_token for i in snapshot] == list(range(1, 11))

    def test_lower_case_symbols_resolve(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.resolve("nse:infy").instrument_token == 1
        assert snapshot.resolve("tcs").instrument_token == 2

    def test_bare_symbol_when_one_exchange_lists_it(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.resolve("TCS").instrument_token == 2
        assert snapshot.resolve("NIFTY36NOVFUT").lot_size == 50

    def test_bare_symbol_on_two_exchanges_is_ambiguous(self, snapshot: RegistrySnapshot) -> None:
        with pytest.raises(AmbiguousSymbol) as caught:
            snapshot.resolve("INFY")
        assert caught.value.code == "AMBIGUOUS_SYMBOL"
        assert "EXCHANGE:INFY" in caught.value.message

    def test_a_delisted_listing_does_not_make_a_live_one_ambiguous(
        self, snapshot: RegistrySnapshot
    ) -> None:
        assert snapshot.resolve("OLDCO").symbol == "BSE:OLDCO"

    def test_two_delisted_listings_stay_ambiguous(self, snapshot: RegistrySnapshot) -> None:
        with pytest.raises(AmbiguousSymbol):
            snapshot.lookup("GONE")

    @pytest.mark.parametrize("symbol", ["NSE:NOPE", "NOPE", "", "X" * 200, "NSE:"])
    def test_unknown(self, snapshot: RegistrySnapshot, symbol: str) -> None:
        with pytest.raises(UnknownInstrument) as caught:
            snapshot.resolve(symbol)
        assert caught.value.code == "UNKNOWN_INSTRUMENT"

    def test_a_token_in_digits_stands_for_a_symbol(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.lookup("2").symbol == "NSE:TCS"
        assert snapshot.resolve("10").symbol == "NFO:NIFTY36NOVFUT"
        for unknown in ("999", "0", "-2", "２", "2.0"):
            with pytest.raises(UnknownInstrument):
                snapshot.lookup(unknown)

    def test_digits_are_a_token_before_a_tradingsymbol(self) -> None:
        numeric = RegistrySnapshot(
            [inst(1, "NSE", "INFY"), inst(2, "BSE", "1"), inst(3, "BSE", "500")], NOW
        )
        assert numeric.lookup("1").symbol == "NSE:INFY"
        assert numeric.lookup("BSE:1").symbol == "BSE:1"
        assert numeric.lookup("2").symbol == "BSE:1"
        assert numeric.lookup("500").symbol == "BSE:500"  # no instrument has token 500

    def test_unknown_token(self, snapshot: RegistrySnapshot) -> None:
        with pytest.raises(UnknownInstrument):
            snapshot.instrument(999)

    def test_delisted_is_not_tradable_but_can_be_looked_up(
        self, snapshot: RegistrySnapshot
    ) -> None:
        with pytest.raises(InstrumentNotTradable) as caught:
            snapshot.resolve("NSE:OLDCO")
        assert caught.value.code == "INSTRUMENT_NOT_TRADABLE"
        assert snapshot.lookup("NSE:OLDCO").status is InstrumentStatus.DELISTED

    def test_halted_resolves_with_its_status(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.resolve("HALTCO").status is InstrumentStatus.HALTED

    def test_counts_by_status(self, snapshot: RegistrySnapshot) -> None:
        assert snapshot.counts == {"active": 6, "halted": 1, "delisted": 3, "expired": 0}
        assert RegistrySnapshot.empty().counts == {
            "active": 0,
            "halted": 0,
            "delisted": 0,
            "expired": 0,
        }


class TestWithInstrument:
    def test_replaces_one_instrument_and_leaves_the_original_alone(
        self, snapshot: RegistrySnapshot
    ) -> None:
        halted = snapshot.instrument(1).with_status(InstrumentStatus.HALTED, NOW)
        changed = snapshot.with_instrument(halted)
        assert changed.resolve("NSE:INFY").status is InstrumentStatus.HALTED
        assert changed.instrument(1) is halted
        assert [i.instrument_token for i in changed] == list(range(1, 11))
        assert changed.counts == {"active": 5, "halted": 2, "delisted": 3, "expired": 0}
        assert snapshot.resolve("NSE:INFY").status is InstrumentStatus.ACTIVE
        assert snapshot.counts["halted"] == 1

    def test_delisting_updates_bare_resolution(self, snapshot: RegistrySnapshot) -> None:
        delisted = snapshot.instrument(3).with_status(InstrumentStatus.DELISTED, NOW)
        changed = snapshot.with_instrument(delisted)
        assert changed.resolve("INFY").symbol == "NSE:INFY"
        revived = changed.with_instrument(delisted.with_status(InstrumentStatus.ACTIVE, NOW))
        with pytest.raises(AmbiguousSymbol):
            revived.resolve("INFY")

    def test_refuses_a_changed_identity(self, snapshot: RegistrySnapshot) -> None:
        with pytest.raises(ValueError):
            snapshot.with_instrument(inst(1, "NSE", "RENAMED"))


class TestSearch:
    def test_filters(self, snapshot: RegistrySnapshot) -> None:
        def tokens(**where: Any) -> list[int]:
            page = snapshot.search(InstrumentFilter.create(**where), limit=100)
            return [i.instrument_token for i in page.items]

        assert tokens(exchange="BSE") == [3, 6, 8]
        assert tokens(exchange="bse") == [3, 6, 8]
        assert tokens(instrument_type="FUT") == [10]
        assert tokens(segment="nfo-fut") == [10]
        assert tokens(q="infosys") == [1, 3]
        assert tokens(q="nifty36") == [10]
        assert tokens(q="INFY", exchange="NSE") == [1]
        assert tokens(q="zzz") == []

    def test_cursor_pagination_visits_everything_once(self, snapshot: RegistrySnapshot) -> None:
        seen: list[int] = []
        cursor = None
        pages = 0
        while True:
            page = snapshot.search(InstrumentFilter(), limit=3, cursor=cursor)
            seen += [i.instrument_token for i in page.items]
            pages += 1
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == list(range(1, 11))
        assert pages == 4

    def test_last_full_page_has_no_next_cursor(self, snapshot: RegistrySnapshot) -> None:
        page = snapshot.search(InstrumentFilter(), limit=10)
        assert len(page.items) == 10
        assert page.next_cursor is None

    def test_cursor_round_trip_and_garbage(self) -> None:
        assert decode_cursor(encode_cursor(408065)) == 408065
        for garbage in ["???", "bm90LWEtY3Vyc29y", "dDp4"]:
            with pytest.raises(ValidationFailed):
                decode_cursor(garbage)
