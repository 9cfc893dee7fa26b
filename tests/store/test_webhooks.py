"""The webhook event rules: which events an order change fires (``EVENT_RULES``; the SQL
expansion made from the same table is held to the Python one in
tests/services/webhooks/test_outbox.py)."""

from __future__ import annotations

import pytest

from app.store.webhooks import _PG_EXPAND, EVENT_RULES, event_types


class TestEventTypes:
    @pytest.mark.parametrize(
        ("status", "created", "traded", "expected"),
        [
            ("open", True, False, ["order.accepted"]),
            ("pending_trigger", True, False, ["order.accepted"]),
            ("rejected", True, False, ["order.rejected"]),
            ("filled", True, True, ["order.accepted", "order.filled"]),
            ("partially_filled", True, True, ["order.accepted", "order.partially_filled"]),
            (
                "cancelled",
                True,
                True,
                ["order.accepted", "order.partially_filled", "order.cancelled"],
            ),
            ("cancelled", True, False, ["order.accepted", "order.cancelled"]),
            ("partially_filled", False, True, ["order.partially_filled"]),
            ("filled", False, True, ["order.filled"]),
            ("cancelled", False, False, ["order.cancelled"]),
            ("expired", False, False, ["order.expired"]),
            ("open", False, False, []),  # an amend, a stop that triggered without trading
        ],
    )
    def test_event_types(
        self, status: str, created: bool, traded: bool, expected: list[str]
    ) -> None:
        assert event_types(status, created=created, traded=traded) == expected


class TestRulesInSql:
    def test_the_sql_expansion_is_made_from_the_rules(self) -> None:
        for _when, by_status, default in EVENT_RULES:
            for event in [*by_status.values(), default]:
                if event is not None:
                    assert f"'{event}'" in _PG_EXPAND
