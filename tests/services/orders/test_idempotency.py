"""Placing the same thing twice: Idempotency-Key replays (``IdempotencyGuard`` and the
service's use of it) and resubmitted ``client_order_id``s, which return the original order."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from app.errors import ValidationFailed
from app.services.orders import books
from app.services.orders.idempotency import (
    IdempotencyGuard,
    IdempotencyInFlight,
    IdempotencyKeyReused,
)
from app.services.orders.journal import JournalUnavailable
from app.services.orders.service import OrderService
from app.settings import Settings
from tests.support.orders import batch_body, codes, opened_registry, serving_orders
from tests.support.trading import order


@pytest.fixture
def settings(make_settings: Callable[..., Settings], pg_url: str) -> Settings:
    return make_settings(db={"url": pg_url})


class TestIdempotencyGuard:
    async def test_a_claimed_key_is_in_flight_until_released(self, settings: Settings) -> None:
        async with opened_registry(settings) as (database, _registry, _metrics):
            guard = IdempotencyGuard(database)
            guard.claim("a", "k-1")
            with pytest.raises(IdempotencyInFlight) as caught:
                guard.claim("a", "k-1")
            assert (caught.value.code, caught.value.status) == ("IDEMPOTENCY_IN_FLIGHT", 409)
            guard.claim("b", "k-1")  # keys are per account
            guard.release("a", "k-1")
            guard.claim("a", "k-1")

    @pytest.mark.parametrize("key", ["", "k" * 129, "tab\there", "new\nline"], ids=repr)
    async def test_malformed_keys_are_refused(self, settings: Settings, key: str) -> None:
        async with opened_registry(settings) as (database, _registry, _metrics):
            guard = IdempotencyGuard(database)
            with pytest.raises(ValidationFailed) as caught:
                guard.claim("a", key)
            assert caught.value.code == "VALIDATION_ERROR"
            guard.claim("a", "k" * 128)  # the longest key; a refused one claimed nothing

    async def test_an_unknown_key_has_nothing_to_replay(self, settings: Settings) -> None:
        async with opened_registry(settings) as (database, _registry, _metrics):
            assert await IdempotencyGuard(database).replay("a", "never-used", "hash") is None


class TestIdempotencyKey:
    async def test_same_key_and_body_answer_the_stored_response(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875"), order("buy", "1", "1875.01"))
        async with serving_orders(settings) as orders:
            first = await orders.place_batch("a", body, idempotency_key="k-1")
            second = await orders.place_batch("a", body, idempotency_key="k-1")
            assert second == first
            assert len(orders.live_order_ids("a")) == 1  # placed once

    async def test_the_stored_response_survives_a_restart(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875"))
        async with serving_orders(settings) as orders:
            first = await orders.place_batch("a", body, idempotency_key="k-1")
        async with serving_orders(settings) as orders:
            again = await orders.place_batch("a", body, idempotency_key="k-1")
            assert again == first
            assert len(orders.live_order_ids("a")) == 1

    async def test_a_guard_reads_what_the_service_stored(self, settings: Settings) -> None:
        async with (
            opened_registry(settings) as (database, _registry, _metrics),
            serving_orders(settings) as orders,
        ):
            placed = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875")), idempotency_key="k-1"
            )
            guard = IdempotencyGuard(database)
            digest = hashlib.sha256(batch_body(order("buy", "1", "1875"))).hexdigest()
            assert await guard.replay("a", "k-1", digest) == placed
            with pytest.raises(IdempotencyKeyReused):
                await guard.replay("a", "k-1", "another-digest")

    async def test_the_same_key_with_another_body_is_refused(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875")), idempotency_key="k"
            )
            with pytest.raises(IdempotencyKeyReused) as caught:
                await orders.place_batch(
                    "a", batch_body(order("buy", "2", "1875")), idempotency_key="k"
                )
            assert (caught.value.code, caught.value.status) == ("IDEMPOTENCY_KEY_REUSED", 422)
            assert len(orders.live_order_ids("a")) == 1
            # The refused attempt did not leave the key in flight.
            again = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875")), idempotency_key="k"
            )
            assert again["accepted"] == 1

    async def test_keys_belong_to_one_account(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            a = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875")), idempotency_key="k"
            )
            b = await orders.place_batch(
                "b", batch_body(order("buy", "2", "1875")), idempotency_key="k"
            )
            assert a["batch_id"] != b["batch_id"]
            assert (len(orders.live_order_ids("a")), len(orders.live_order_ids("b"))) == (1, 1)

    async def test_a_key_still_in_flight_is_refused(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875"))
        async with serving_orders(settings) as orders:
            outcomes: list[Any] = await asyncio.gather(
                orders.place_batch("a", body, idempotency_key="k"),
                orders.place_batch("a", body, idempotency_key="k"),
                return_exceptions=True,
            )
            first, second = outcomes
            assert isinstance(first, dict)
            assert isinstance(second, IdempotencyInFlight)
            assert (second.code, second.status) == ("IDEMPOTENCY_IN_FLIGHT", 409)
            # Once the first has answered, the key replays its response.
            assert await orders.place_batch("a", body, idempotency_key="k") == first
            assert len(orders.live_order_ids("a")) == 1

    async def test_without_a_key_each_request_places(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875"))
        async with serving_orders(settings) as orders:
            first = await orders.place_batch("a", body)
            second = await orders.place_batch("a", body)
            assert first["batch_id"] != second["batch_id"]
            assert len(orders.live_order_ids("a")) == 2


class TestClientOrderIdResubmission:
    async def test_a_live_order_is_returned_unchanged(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            first = await orders.place_batch(
                "a", batch_body(order("buy", "3", "1875", client_order_id="c"))
            )
            await orders.place_batch("b", batch_body(order("sell", "1", "1875")))
            again = await orders.place_batch(
                "a", batch_body(order("buy", "9", "1870", client_order_id="c"))
            )
        (original,), (result,) = first["results"], again["results"]
        assert original["created"] is True
        assert result["created"] is False
        assert result["order_id"] == original["order_id"]
        assert (result["status"], result["remaining_quantity"]) == ("partially_filled", "2")
        assert again["accepted"] == 1  # an existing order is not a reject

    async def test_a_finished_order_is_returned_from_the_journal(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            first = await orders.place_batch(
                "a", batch_body(order("buy", "3", "1875", client_order_id="c"))
            )
            order_id = int(first["results"][0]["order_id"])
            await orders.cancel_order("a", order_id)
            again = await orders.place_batch(
                "a", batch_body(order("buy", "3", "1875", client_order_id="c"))
            )
            assert orders.live_order_ids("a") == []
        result = again["results"][0]
        assert (result["order_id"], result["status"], result["created"]) == (
            str(order_id),
            "cancelled",
            False,
        )

    async def test_resubmission_after_a_restart(self, settings: Settings) -> None:
        body = batch_body(order("buy", "3", "1875", client_order_id="c"))
        async with serving_orders(settings) as orders:
            first = await orders.place_batch("a", body)
        async with serving_orders(settings) as orders:
            again = await orders.place_batch("a", body)
            assert len(orders.live_order_ids("a")) == 1
        assert again["results"][0]["order_id"] == first["results"][0]["order_id"]
        assert again["results"][0]["created"] is False

    async def test_a_single_order_resubmitted_is_returned_not_refused(
        self, settings: Settings
    ) -> None:
        async with serving_orders(settings) as orders:
            body = orjson.dumps(order("buy", "3", "1875", client_order_id="c"))
            first = await orders.place_order("a", body)
            again = await orders.place_order("a", body)
        assert (first["created"], again["created"]) == (True, False)
        assert again["order_id"] == first["order_id"]
        assert again["index"] == 0

    async def test_client_order_ids_belong_to_one_account(self, settings: Settings) -> None:
        body = batch_body(order("buy", "1", "1875", client_order_id="c"))
        async with serving_orders(settings) as orders:
            a = (await orders.place_batch("a", body))["results"][0]
            b = (await orders.place_batch("b", body))["results"][0]
        assert a["order_id"] != b["order_id"]
        assert (a["created"], b["created"]) == (True, True)

    async def test_a_repeat_within_one_batch_is_refused(self, settings: Settings) -> None:
        async with serving_orders(settings) as orders:
            response = await orders.place_batch(
                "a",
                batch_body(
                    order("buy", "1", "1875", client_order_id="c"),
                    order("buy", "1", "1875", client_order_id="c"),
                ),
            )
            assert codes(response) == [None, "DUPLICATE_CLIENT_ORDER_ID"]
            assert len(orders.live_order_ids("a")) == 1

    async def test_an_order_refused_before_the_book_keeps_its_id_free(
        self, settings: Settings
    ) -> None:
        async with serving_orders(settings) as orders:
            refused = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875.01", client_order_id="c"))
            )
            placed = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875", client_order_id="c"))
            )
        assert codes(refused) == ["INVALID_TICK_SIZE"]
        assert placed["results"][0]["created"] is True

    async def test_an_order_finished_while_the_batch_reads_the_journal(
        self, settings: Settings
    ) -> None:
        async with serving_orders(settings) as orders:
            live_id, resubmit = await _resubmit_while_one_finishes(orders)
            outcome = await asyncio.gather(resubmit, return_exceptions=True)
            await _recovered(orders)
        (response,) = outcome
        assert not isinstance(response, JournalUnavailable), "the commit failed"
        assert isinstance(response, dict)
        result = response["results"][1]
        assert (result["order_id"], result["created"]) == (str(live_id), False)

    async def test_an_order_forgotten_while_the_batch_reads_the_journal_is_sent_again(
        self, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The fallback when even the finished orders' memory lost it: that order is refused
        with a retryable code, never placed twice, and the journal stays up."""
        monkeypatch.setattr(books, "FINISHED_KEPT", 0)
        async with serving_orders(settings) as orders:
            _, resubmit = await _resubmit_while_one_finishes(orders)
            response = await resubmit
            assert orders.journal.available
            again = await orders.place_batch(
                "a", batch_body(order("buy", "1", "1875", client_order_id="live"))
            )
        assert codes(response) == [None, "CLIENT_ORDER_ID_BUSY"]
        assert response["results"][0]["created"] is False
        assert again["results"][0]["status"] == "cancelled"
        assert again["results"][0]["created"] is False


async def _resubmit_while_one_finishes(
    orders: OrderService,
) -> tuple[int, asyncio.Task[dict[str, Any]]]:
    """A batch resubmits "done" (finished, so it is first read from the journal: an await)
    and "live", which is cancelled during that await. Returns live's id and the batch."""
    done = await orders.place_batch(
        "a", batch_body(order("buy", "1", "1875", client_order_id="done"))
    )
    await orders.cancel_order("a", int(done["results"][0]["order_id"]))
    live = await orders.place_batch(
        "a", batch_body(order("buy", "1", "1875", client_order_id="live"))
    )
    live_id = int(live["results"][0]["order_id"])
    resubmit = asyncio.get_running_loop().create_task(
        orders.place_batch(
            "a",
            batch_body(
                order("buy", "1", "1875", client_order_id="done"),
                order("buy", "1", "1875", client_order_id="live"),
            ),
        )
    )
    await asyncio.sleep(0)
    await orders.cancel_order("a", live_id)
    return live_id, resubmit


async def _recovered(orders: OrderService) -> None:
    """Wait until the service has rebuilt its books after a failed commit (if one failed)."""
    for _ in range(200):
        if orders.journal.available:
            return
        await asyncio.sleep(0.02)
