"""Client message parsing: every refusal has a stable code and changes nothing."""

from __future__ import annotations

import pytest

from app.services.instruments.snapshot import RegistrySnapshot
from app.services.ticker.protocol import (
    MAX_MESSAGE_BYTES,
    ClientError,
    Request,
    flag,
    instruments,
    mode_of,
    parse,
)
from app.services.ticker.ticks import Mode
from tests.services.ticker.support import INFY

SNAPSHOT = RegistrySnapshot([INFY], None)


class TestParse:
    def test_a_request(self) -> None:
        request = parse('{"action": "subscribe", "id": "r1", "symbols": ["NSE:INFY"]}')
        assert (request.action, request.id) == ("subscribe", "r1")

    @pytest.mark.parametrize(
        ("raw", "code"),
        [
            ("x" * (MAX_MESSAGE_BYTES + 1), "MESSAGE_TOO_LARGE"),
            ("{", "INVALID_JSON"),
            ("3", "INVALID_MESSAGE"),
            ('{"action": 3}', "INVALID_MESSAGE"),
            ('{"action": "ping", "id": 1.5}', "INVALID_MESSAGE"),
        ],
    )
    def test_refusals(self, raw: str, code: str) -> None:
        with pytest.raises(ClientError) as caught:
            parse(raw)
        assert caught.value.code == code


class TestFields:
    def test_mode_defaults_and_validation(self) -> None:
        assert mode_of(Request("subscribe", {}), Mode.QUOTE) is Mode.QUOTE
        assert mode_of(Request("mode", {"mode": "full"}), None) is Mode.FULL
        for body in ({}, {"mode": "x"}, {"mode": 1}):
            with pytest.raises(ClientError, match="mode"):
                mode_of(Request("mode", body), None)

    def test_instruments_by_symbol_or_token_once_each(self) -> None:
        # a token as a number or in digits, as REST paths take it
        body = {"symbols": ["NSE:INFY", 408065, "408065"], "tokens": [408065]}
        request = Request("subscribe", body)
        assert [i.symbol for i in instruments(request, SNAPSHOT, 10)] == ["NSE:INFY"]

    @pytest.mark.parametrize(
        ("body", "code"),
        [
            ({"symbols": []}, "INVALID_SYMBOLS"),
            ({"tokens": 5}, "INVALID_SYMBOLS"),
            ({"symbols": [None]}, "INVALID_SYMBOLS"),
            ({"symbols": ["X" * 65]}, "INVALID_SYMBOLS"),
            ({"symbols": ["A", "B", "C"]}, "TOO_MANY_INSTRUMENTS"),
            ({"symbols": ["NSE:TCS"]}, "UNKNOWN_INSTRUMENT"),
            ({"tokens": [1]}, "UNKNOWN_INSTRUMENT"),
        ],
    )
    def test_instrument_refusals(self, body: dict, code: str) -> None:
        with pytest.raises(ClientError) as caught:
            instruments(Request("subscribe", body), SNAPSHOT, 2)
        assert caught.value.code == code

    def test_flags_are_booleans(self) -> None:
        assert flag(Request("auth", {"x": True}), "x") is True
        assert flag(Request("auth", {}), "x") is False
        with pytest.raises(ClientError):
            flag(Request("auth", {"x": 1}), "x")
