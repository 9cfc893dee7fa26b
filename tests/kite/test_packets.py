"""KiteTicker's binary packets, judged by the official client's own parser
(``KiteTicker._parse_binary``): every mode, every segment's price divisor, index packets,
frames of several packets, clamping past 32 bits and the heartbeat."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from kiteconnect import KiteTicker

from app.services.instruments.model import Instrument
from app.services.kite.packets import HEARTBEAT, U32, divisor, frame, packet
from app.services.ticker.ticks import Mode

PARSER = KiteTicker("desk", "token")
NS = 1_000_000_000
TRADE_NS = 1_796_000_000 * NS
CHANGE_NS = TRADE_NS + 3 * NS

# (segment, divisor the client applies, prices with as many digits as it resolves)
SEGMENTS = [
    (1, 100, "1875.45"),  # NSE
    (2, 100, "24316.8"),  # NFO
    (3, 10_000_000, "83.1234567"),  # CDS
    (4, 100, "812.4"),  # BSE
    (5, 100, "310.05"),  # BFO
    (6, 10_000, "83.1275"),  # BCD
    (7, 100, "71250"),  # MCX
    (12, 10_000, "5.1234"),  # NCO
]


def instrument(token: int, last_price: str) -> Instrument:
    return Instrument.create(
        instrument_token=token,
        exchange_token=token >> 8,
        exchange="NSE",
        tradingsymbol=f"T{token}",
        name="T",
        instrument_type="EQ",
        segment="NSE",
        tick_size=Decimal("0.0000001"),
        lot_size=Decimal(1),
        expiry=None,
        strike=Decimal(0),
        last_price=Decimal(last_price),
    )


def full_tick(token: int, price: str, **overrides: Any) -> dict[str, Any]:
    """A full-mode tick as ``app.services.ticker.ticks.render`` makes it."""
    p = Decimal(price)
    tick: dict[str, Any] = {
        "type": "tick",
        "mode": "full",
        "symbol": f"NSE:T{token}",
        "instrument_token": token,
        "seq": 7,
        "timestamp": "2026-11-30T10:00:03Z",
        "ts_ns": CHANGE_NS,
        "ltp": price,
        "last_quantity": "25",
        "last_trade_time": datetime.fromtimestamp(TRADE_NS / NS).astimezone().isoformat(),
        "volume": "1500",
        "trades": 4,
        "bid": str(p - 1),
        "bid_quantity": "10",
        "ask": str(p + 1),
        "ask_quantity": "11",
        "ohlc": {"open": str(p - 2), "high": str(p + 3), "low": str(p - 4), "close": price},
        "depth": {
            "bids": [
                {"price": str(p - 1 - i), "quantity": str(10 + i), "orders": 1 + i}
                for i in range(5)
            ],
            "asks": [
                {"price": str(p + 1 + i), "quantity": str(11 + i), "orders": 2 + i}
                for i in range(3)
            ],
        },
    }
    tick.update(overrides)
    return tick


def parse(data: bytes) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = PARSER._parse_binary(data)
    return result


def approx(text: str) -> Any:
    return pytest.approx(float(Decimal(text)), rel=0, abs=1e-9)


class TestTradablePackets:
    @pytest.mark.parametrize(("segment", "scale", "price"), SEGMENTS)
    def test_every_mode_and_divisor(self, segment: int, scale: int, price: str) -> None:
        token = (40_000 << 8) | segment
        assert divisor(token) == scale
        close = "70"
        i = instrument(token, close)
        tick = full_tick(token, price)

        [ltp] = parse(frame([packet(tick, Mode.LTP, i)]))
        assert ltp == {
            "tradable": True,
            "mode": "ltp",
            "instrument_token": token,
            "last_price": approx(price),
        }

        [quote] = parse(frame([packet(tick, Mode.QUOTE, i)]))
        assert quote["mode"] == "quote"
        assert quote["last_price"] == approx(price)
        assert (quote["last_traded_quantity"], quote["volume_traded"]) == (25, 1500)
        assert quote["total_buy_quantity"] == sum(10 + n for n in range(5))
        assert quote["total_sell_quantity"] == sum(11 + n for n in range(3))
        p = Decimal(price)
        assert quote["ohlc"] == {
            "open": approx(str(p - 2)),
            "high": approx(str(p + 3)),
            "low": approx(str(p - 4)),
            "close": approx(close),  # the previous session's close
        }

        [full] = parse(frame([packet(tick, Mode.FULL, i)]))
        assert full["mode"] == "full"
        assert full["last_trade_time"] == datetime.fromtimestamp(TRADE_NS // NS)
        assert full["exchange_timestamp"] == datetime.fromtimestamp(CHANGE_NS // NS)
        assert (full["oi"], full["oi_day_high"], full["oi_day_low"]) == (0, 0, 0)
        assert full["depth"]["buy"] == [
            {"quantity": 10 + n, "price": approx(str(p - 1 - n)), "orders": 1 + n} for n in range(5)
        ]
        assert (
            full["depth"]["sell"]
            == [
                {"quantity": 11 + n, "price": approx(str(p + 1 + n)), "orders": 2 + n}
                for n in range(3)
            ]
            + [{"quantity": 0, "price": 0, "orders": 0}] * 2
        )

    def test_packet_sizes_are_kites(self) -> None:
        token = (1594 << 8) | 1
        tick, i = full_tick(token, "1875.45"), instrument(token, "1875.4")
        sizes = [len(packet(tick, mode, i)) for mode in (Mode.LTP, Mode.QUOTE, Mode.FULL)]
        assert sizes == [8, 44, 184]

    def test_quantities_past_32_bits_are_clamped(self) -> None:
        token = (1594 << 8) | 1
        tick = full_tick(token, "1875.45", volume="5000000000", last_quantity="4294967296")
        tick["depth"]["bids"][0]["quantity"] = "9" * 12
        tick["depth"]["bids"][0]["orders"] = 70_000
        [full] = parse(frame([packet(tick, Mode.FULL, instrument(token, "1"))]))
        assert (full["volume_traded"], full["last_traded_quantity"]) == (U32, U32)
        assert full["total_buy_quantity"] == U32
        assert full["depth"]["buy"][0]["quantity"] == U32
        assert full["depth"]["buy"][0]["orders"] == 0xFFFF

    def test_a_tick_before_any_trade(self) -> None:
        token = (1594 << 8) | 1
        tick = full_tick(
            token,
            "1875.45",
            ts_ns=None,
            last_trade_time=None,
            volume="0",
            ohlc={"open": None, "high": None, "low": None, "close": None},
            depth={"bids": [], "asks": []},
        )
        [full] = parse(frame([packet(tick, Mode.FULL, instrument(token, "1875.4"))]))
        assert full["ohlc"] == {"open": 0, "high": 0, "low": 0, "close": 1875.4}
        assert full["depth"]["buy"] == [{"quantity": 0, "price": 0, "orders": 0}] * 5


class TestIndexPackets:
    def test_index_modes(self) -> None:
        token = 256265  # NIFTY 50: segment 9
        assert token & 0xFF == 9
        i = instrument(token, "24300")
        tick = full_tick(token, "24316.8")
        sizes = [len(packet(tick, m, i)) for m in (Mode.LTP, Mode.QUOTE, Mode.FULL)]
        assert sizes == [8, 28, 32]
        ltp, quote, full = parse(frame([packet(tick, m, i) for m in Mode]))
        assert ltp == {
            "tradable": False,
            "mode": "ltp",
            "instrument_token": token,
            "last_price": 24316.8,
        }
        assert (quote["tradable"], quote["mode"]) == (False, "quote")
        assert quote["ohlc"] == {"open": 24314.8, "high": 24319.8, "low": 24312.8, "close": 24300}
        assert quote["change"] == pytest.approx((24316.8 - 24300) * 100 / 24300)
        assert full["mode"] == "full"
        assert full["exchange_timestamp"] == datetime.fromtimestamp(CHANGE_NS // NS)


class TestFrames:
    def test_several_packets_in_one_frame(self) -> None:
        packets = []
        for segment, _scale, price in SEGMENTS:
            token = (7 << 8) | segment
            packets.append(packet(full_tick(token, price), Mode.QUOTE, instrument(token, "1")))
        parsed = parse(frame(packets))
        assert [t["instrument_token"] for t in parsed] == [(7 << 8) | s for s, _, _ in SEGMENTS]
        assert [t["last_price"] for t in parsed] == [approx(p) for _, _, p in SEGMENTS]

    def test_the_heartbeat_is_one_byte_and_no_ticks(self) -> None:
        assert HEARTBEAT == b"\x00"
        assert parse(HEARTBEAT) == []
