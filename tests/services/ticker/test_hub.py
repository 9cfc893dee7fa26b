"""The hub: delivery and coalescing, control before ticks, limits, slow and idle clients, and
the in-place sender. Sockets here are in-memory recorders; a gate stands in for a client
that stops reading (the send waits, as an ASGI send does when the transport is paused)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from app.metrics import Metrics
from app.services.ticker import sender
from app.services.ticker.hub import ORDERS, TICKER, Connection, Hub
from app.services.ticker.ticks import Mode


class FakeSocket:
    def __init__(self) -> None:
        self.frames: list[dict] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.broken = False

    async def send(self, data: bytes) -> None:
        await self.gate.wait()
        if self.broken:
            raise ConnectionResetError("gone")
        self.frames.append(orjson.loads(data))


def tick(token: int, seq: int) -> dict:
    return {
        "type": "tick",
        "mode": "full",
        "symbol": f"X:{token}",
        "instrument_token": token,
        "seq": seq,
        "timestamp": None,
        "ts_ns": 0,
        "ltp": "1",
        "depth": {"bids": [], "asks": []},
    }


def make_hub(**limits: float) -> tuple[Hub, Metrics, list[int]]:
    metrics = Metrics()
    changes: list[int] = []
    hub = Hub(
        metrics=metrics,
        queue_limit=int(limits.get("queue_limit", 100)),
        slow_seconds=limits.get("slow_seconds", 10.0),
        idle_seconds=limits.get("idle_seconds", 100.0),
        on_interest_change=lambda: changes.append(1),
    )
    return hub, metrics, changes


def connect(hub: Hub, account: str = "a", kind: str = TICKER) -> tuple[Connection, FakeSocket]:
    socket = FakeSocket()
    conn = Connection(account=account, key_id=account, kind=kind, send=socket.send)
    hub.add(conn)
    return conn, socket


class TestDelivery:
    def test_ticks_in_one_frame_per_flush_in_each_subscribers_mode(self) -> None:
        hub, _, _ = make_hub()
        a, sa = connect(hub)
        b, sb = connect(hub)
        hub.subscribe(a, [1, 2], Mode.LTP)
        hub.subscribe(b, [2], Mode.FULL)
        hub.deliver(1, tick(1, 5))
        hub.deliver(2, tick(2, 9))
        hub.send_ready()
        assert sa.frames == [
            {
                "type": "ticks",
                "ticks": [
                    {k: v for k, v in tick(1, 5).items() if k != "depth"} | {"mode": "ltp"},
                    {k: v for k, v in tick(2, 9).items() if k != "depth"} | {"mode": "ltp"},
                ],
            }
        ]
        assert sb.frames == [tick(2, 9)]  # a single tick goes as it is
        assert (hub.frames_sent, hub.ticks_sent) == (2, 3)

    def test_an_unsent_tick_is_replaced_by_the_newer_one(self) -> None:
        hub, _, _ = make_hub()
        conn, socket = connect(hub)
        hub.subscribe(conn, [1], Mode.FULL)
        for seq in (1, 2, 3):
            hub.deliver(1, tick(1, seq))
        hub.send_ready()
        assert [f["seq"] for f in socket.frames] == [3]

    def test_control_messages_go_first(self) -> None:
        hub, _, _ = make_hub()
        conn, socket = connect(hub)
        hub.subscribe(conn, [1], Mode.FULL)
        hub.deliver(1, tick(1, 1))
        hub.push(conn, b'{"type":"pong"}')
        hub.send_ready()
        assert [f["type"] for f in socket.frames] == ["pong", "tick"]

    def test_unsubscribing_drops_pending_ticks_and_interest(self) -> None:
        hub, _, changes = make_hub()
        conn, socket = connect(hub)
        hub.subscribe(conn, [1, 2], Mode.QUOTE)
        hub.subscribe(conn, [2], Mode.FULL)  # a mode change is no new interest
        assert changes == [1]
        assert hub.interest() == {1: Mode.QUOTE, 2: Mode.FULL}
        hub.deliver(1, tick(1, 1))
        hub.unsubscribe(conn, [1, 7])
        hub.send_ready()
        assert socket.frames == []
        assert (hub.subscriptions, changes, hub.interest()) == (1, [1, 1], {2: Mode.FULL})

    def test_order_streams_and_per_key_counts(self) -> None:
        hub, _, changes = make_hub()
        one, s1 = connect(hub, "acc", ORDERS)
        two, s2 = connect(hub, "acc", ORDERS)
        assert hub.per_key["acc"] == 2
        assert changes == [1]
        hub.push_account("acc", b'{"type":"order"}', "order")
        hub.push_account("nobody", b'{"type":"order"}', "order")
        assert len(s1.frames) == len(s2.frames) == 1
        hub.remove(one)
        hub.remove(one)  # twice is harmless
        hub.remove(two)
        assert not hub.by_account
        assert not hub.per_key
        assert changes == [1, 1]


def _ticks(frame: dict) -> list[tuple[int, int]]:
    """(instrument, seq) of each tick a frame carries."""
    ticks = frame["ticks"] if frame["type"] == "ticks" else [frame]
    return [(t["instrument_token"], t["seq"]) for t in ticks]


class TestGroups:
    """Connections with the same subscriptions share one queued tick and one frame."""

    def test_same_subscriptions_get_the_same_frame_object(self) -> None:
        hub, _, _ = make_hub()
        sent: list[list[bytes]] = [[], []]
        conns = []
        for n in range(2):

            async def send(data: bytes, box: list[bytes] = sent[n]) -> None:
                box.append(data)

            conn = Connection(account="a", key_id="a", kind=TICKER, send=send)
            hub.add(conn)
            hub.subscribe(conn, [1, 2], Mode.QUOTE)
            conns.append(conn)
        assert len(hub.by_token[1]) == len(hub.by_token[2]) == 1  # one group for both
        hub.deliver(1, tick(1, 1))
        hub.deliver(2, tick(2, 1))
        hub.send_ready()
        assert len(sent[0]) == len(sent[1]) == 1
        assert sent[0][0] is sent[1][0]
        assert (hub.frames_sent, hub.ticks_sent) == (2, 4)

    def test_changing_subscriptions_moves_a_connection_between_groups(self) -> None:
        hub, _, _ = make_hub()
        a, sa = connect(hub)
        b, sb = connect(hub)
        hub.subscribe(a, [1], Mode.LTP)
        hub.subscribe(b, [1], Mode.LTP)
        hub.subscribe(b, [2], Mode.LTP)  # b leaves a's group
        assert len(hub.by_token[1]) == 2
        hub.subscribe(b, [1], Mode.FULL)  # a mode change is a different group too
        hub.unsubscribe(b, [2])
        hub.deliver(1, tick(1, 7))
        hub.deliver(2, tick(2, 7))
        hub.send_ready()
        assert [f["mode"] for f in sa.frames] == ["ltp"]
        assert sb.frames == [tick(1, 7)]
        hub.remove(a)
        hub.remove(b)
        assert hub.by_token == {}  # no group outlives its members
        assert hub.interest() == {}

    async def test_a_busy_member_gets_the_groups_ticks_later_the_others_now(self) -> None:
        hub, _, _ = make_hub()
        slow, stuck = connect(hub, "slow")
        fast, quick = connect(hub, "fast")
        for conn in (slow, fast):
            hub.subscribe(conn, [1, 2], Mode.FULL)
        stuck.gate.clear()
        hub.deliver(1, tick(1, 1))
        hub.send_ready()  # slow's send of this frame waits
        hub.deliver(1, tick(1, 2))
        hub.deliver(2, tick(2, 2))
        hub.send_ready()
        hub.deliver(2, tick(2, 3))
        hub.send_ready()
        assert [_ticks(f) for f in quick.frames] == [[(1, 1)], [(1, 2), (2, 2)], [(2, 3)]]
        stuck.gate.set()
        assert slow.inflight is not None
        await slow.inflight
        # The first frame, then one frame with the latest of each instrument.
        assert [_ticks(f) for f in stuck.frames] == [[(1, 1)], [(1, 2), (2, 3)]]


class TestSlowAndIdle:
    async def test_a_blocked_send_coalesces_then_closes_with_1013(self) -> None:
        hub, metrics, _ = make_hub(slow_seconds=0.2)
        slow, stuck = connect(hub, "slow")
        fast, quick = connect(hub, "fast")
        hub.subscribe(slow, [1], Mode.FULL)
        hub.subscribe(fast, [1], Mode.FULL)
        stuck.gate.clear()
        for seq in range(1, 6):
            hub.deliver(1, tick(1, seq))
            hub.send_ready()
        assert [f["seq"] for f in quick.frames] == [1, 2, 3, 4, 5]  # unaffected
        assert slow.inflight is not None
        assert slow.pending
        hub.sweep(time.monotonic())
        assert not slow.finished.is_set()
        await asyncio.sleep(0.25)
        hub.sweep(time.monotonic())
        assert slow.finished.is_set()
        assert slow.close_code == 1013
        assert metrics.ws_slow_disconnects._value.get() == 1
        stuck.gate.set()  # had it resumed, it would have had 1, then the latest: 5
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert [f["seq"] for f in stuck.frames] == [1]

    async def test_a_resumed_client_gets_the_latest_tick(self) -> None:
        hub, _, _ = make_hub()
        conn, socket = connect(hub)
        hub.subscribe(conn, [1], Mode.FULL)
        socket.gate.clear()
        for seq in (1, 2, 3):
            hub.deliver(1, tick(1, seq))
            hub.send_ready()
        socket.gate.set()
        assert conn.inflight is not None
        await conn.inflight
        assert [f["seq"] for f in socket.frames] == [1, 3]
        assert conn.inflight is None
        assert conn.busy_since is None

    async def test_an_overflowing_control_queue_closes_with_1013(self) -> None:
        hub, metrics, _ = make_hub(queue_limit=3)
        conn, socket = connect(hub)
        socket.gate.clear()
        for _ in range(5):
            hub.push(conn, b"{}")
        assert conn.close_code == 1013
        assert metrics.ws_slow_disconnects._value.get() == 1
        hub.push(conn, b"{}")  # ignored once finished

    def test_idle_clients_are_closed_with_1008(self) -> None:
        hub, _, _ = make_hub(idle_seconds=5)
        conn, _ = connect(hub)
        hub.sweep(time.monotonic() + 1)
        assert not conn.finished.is_set()
        hub.sweep(time.monotonic() + 6)
        assert conn.close_code == 1008
        assert orjson.loads(conn.close_message or b"{}")["code"] == "IDLE_TIMEOUT"

    async def test_a_failing_send_ends_the_connection(self) -> None:
        hub, _, _ = make_hub()
        conn, socket = connect(hub)
        socket.broken = True
        hub.push(conn, b"{}")
        assert conn.finished.is_set()
        assert conn.close_code is None
        other, late = connect(hub)
        late.gate.clear()
        hub.push(other, b"{}")
        late.broken = True
        late.gate.set()
        assert other.inflight is not None
        with pytest.raises(ConnectionResetError):
            await other.inflight
        await asyncio.sleep(0)
        assert other.finished.is_set()

    def test_counters_reach_prometheus_when_synced(self) -> None:
        hub, metrics, _ = make_hub()
        conn, _ = connect(hub)
        hub.subscribe(conn, [1], Mode.FULL)
        hub.deliver(1, tick(1, 1))
        hub.send_ready()
        hub.broadcast(b'{"type":"heartbeat"}', "heartbeat")
        hub.sync_counters()
        hub.sync_counters()
        assert metrics.ticks_sent._value.get() == 1
        assert metrics.ws_frames_sent._value.get() == 2


class TestSender:
    async def test_a_send_that_does_not_wait_completes_in_place(self) -> None:
        done: list[bytes] = []

        async def send(frame: bytes) -> None:
            done.append(frame)

        assert sender.start(send, b"x") is None
        assert done == [b"x"]

    async def test_a_waiting_send_is_finished_in_a_task_and_can_be_cancelled(self) -> None:
        gate = asyncio.Event()
        done: list[bytes] = []

        async def send(frame: bytes) -> None:
            await asyncio.sleep(0)
            await gate.wait()
            done.append(frame)

        suspended = sender.start(send, b"y")
        assert suspended is not None
        task = asyncio.ensure_future(sender.finish(*suspended))
        await asyncio.sleep(0.01)
        gate.set()
        await task
        assert done == [b"y"]

        gate.clear()
        suspended = sender.start(send, b"z")
        assert suspended is not None
        task = asyncio.ensure_future(sender.finish(*suspended))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert done == [b"y"]
