"""Connections, their subscriptions and their send queues.

Each connection has two queues: ``control`` (acks, errors, heartbeats, order updates; never
coalesced, bounded by ``WS_SEND_QUEUE_LIMIT``) and ``pending`` (the latest tick per
instrument: a newer tick replaces an unsent one). Connections with the same subscriptions
(instrument -> mode) share a ``_Group``: a tick is queued once per group, not once per
connection, and a flush builds one frame per group (``{"type": "ticks", "ticks": [...]}``,
or the single ``{"type": "tick"}``) that every member is sent as is, in place while the
socket takes it (``sender``). A member that is still sending an earlier frame gets the
group's ticks merged into its own ``pending`` instead, sent (control messages first) once
its send completes: a client that reads too slowly blocks only its own send; meanwhile its
ticks coalesce (a gap in ``seq``), so neither the engine nor other clients wait. A send
blocked for longer than ``WS_SLOW_CLIENT_SECONDS``, or an overflowing control queue, closes
the connection with 1013.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

import orjson

from app.metrics import Metrics
from app.services.ticker import sender
from app.services.ticker.protocol import POLICY, TICKS_HEAD, TICKS_TAIL, TRY_AGAIN, error
from app.services.ticker.ticks import MODE_RANK, Mode, view

log = logging.getLogger(__name__)

TICKER, ORDERS, KITE = "ticker", "orders", "kite"
_ids = itertools.count(1)


class Codec(Protocol):
    """How a connection's ticks and messages go on the wire: our JSON (``JSON_CODEC``) or
    another protocol's (KiteTicker's binary packets). Groups never mix codecs."""

    def tick(self, full: dict[str, Any], mode: Mode) -> bytes: ...
    def frame(self, pending: dict[int, bytes]) -> tuple[bytes, int]: ...
    def control(self, account: str, message: bytes, kind: str) -> bytes | None:
        """An account's order or fill update, or a broadcast (``kind`` ``heartbeat``), as
        this codec sends it (None: not sent)."""
        ...


class JsonCodec:
    def tick(self, full: dict[str, Any], mode: Mode) -> bytes:
        return orjson.dumps(view(full, mode))

    def frame(self, pending: dict[int, bytes]) -> tuple[bytes, int]:
        return _frame(pending)

    def control(self, account: str, message: bytes, kind: str) -> bytes | None:
        return message


JSON_CODEC = JsonCodec()


class Connection:
    __slots__ = (
        "account",
        "busy_since",
        "can_trade",
        "cancel_on_disconnect",
        "close_code",
        "close_message",
        "close_reason",
        "codec",
        "control",
        "finished",
        "group",
        "id",
        "inflight",
        "key_id",
        "kind",
        "last_seen",
        "modes",
        "pending",
        "send",
        "write_now",
    )

    def __init__(
        self,
        *,
        account: str,
        key_id: str,
        kind: str,
        send: sender.Send,
        write_now: Callable[[bytes], bool] = lambda _data: False,
        codec: Codec = JSON_CODEC,
        cancel_on_disconnect: bool = False,
        can_trade: bool = False,
    ) -> None:
        self.id = next(_ids)
        self.codec = codec
        self.send = send
        self.write_now = write_now  # sends at once when the socket can take it (else False)
        self.account = account
        self.key_id = key_id
        self.kind = kind
        self.modes: dict[int, Mode] = {}
        self.pending: dict[int, bytes] = {}
        self.group: _Group | None = None
        self.control: deque[bytes] = deque()
        self.finished = asyncio.Event()
        self.inflight: asyncio.Future[None] | None = None  # a send that had to wait
        self.busy_since: float | None = None
        self.last_seen = time.monotonic()
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_message: bytes | None = None
        self.cancel_on_disconnect = cancel_on_disconnect
        self.can_trade = can_trade

    def finish(
        self, code: int | None = None, reason: str = "", message: bytes | None = None
    ) -> None:
        """End the connection (first call wins); ``code`` None: the client went away."""
        if self.finished.is_set():
            return
        self.close_code, self.close_reason, self.close_message = code, reason, message
        self.finished.set()


class _Group:
    """The connections subscribed to exactly ``key`` (instrument -> mode pairs)."""

    __slots__ = ("codec", "key", "members", "pending")

    def __init__(self, key: frozenset[tuple[int, Mode]], codec: Codec) -> None:
        self.key = key
        self.codec = codec
        self.members: set[Connection] = set()
        self.pending: dict[int, bytes] = {}  # filled by ``deliver``, sent by ``send_ready``


class Hub:
    def __init__(
        self,
        *,
        metrics: Metrics,
        queue_limit: int,
        slow_seconds: float,
        idle_seconds: float,
        on_interest_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._metrics = metrics
        self._queue_limit = queue_limit
        self._slow_seconds = slow_seconds
        self._idle_seconds = idle_seconds
        self._on_interest_change = on_interest_change
        self.connections: set[Connection] = set()
        # instrument -> the groups subscribed to it, each with its mode (``token in by_token``:
        # some local client wants it)
        self.by_token: dict[int, dict[_Group, Mode]] = {}
        self._groups: dict[tuple[Codec, frozenset[tuple[int, Mode]]], _Group] = {}
        self._modes: dict[int, list[int]] = {}  # token -> subscribers per mode rank
        self.by_account: dict[str, set[Connection]] = {}
        self.per_key: Counter[str] = Counter()
        self.subscriptions = 0
        # Counted here, added to the Prometheus counters by ``sync_counters`` (once a second):
        # a labelled counter increment per frame costs more than the rest of the send path.
        self.frames_sent = 0
        self.ticks_sent = 0
        self._synced = (0, 0)
        self._ready: deque[_Group] = deque()  # groups with ticks queued since the last flush

    # -- membership -----------------------------------------------------------------------

    def add(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.per_key[conn.key_id] += 1
        if conn.kind != TICKER:  # order streams, and KiteTicker's order updates
            accounts = self.by_account.setdefault(conn.account, set())
            accounts.add(conn)
            if len(accounts) == 1:
                self._on_interest_change()

    def remove(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self.per_key[conn.key_id] -= 1
        if self.per_key[conn.key_id] <= 0:
            del self.per_key[conn.key_id]
        if conn.modes:
            self.unsubscribe(conn, list(conn.modes))
        accounts = self.by_account.get(conn.account)
        if accounts is not None and conn in accounts:
            accounts.discard(conn)
            if not accounts:
                del self.by_account[conn.account]
                self._on_interest_change()

    def subscribe(self, conn: Connection, tokens: list[int], mode: Mode) -> None:
        new_token = False
        rank = MODE_RANK[mode]
        for token in tokens:
            old = conn.modes.get(token)
            counts = self._modes.get(token)
            if counts is None:
                counts = self._modes[token] = [0, 0, 0]
                new_token = True
            if old is None:
                self.subscriptions += 1
            else:
                counts[MODE_RANK[old]] -= 1
            counts[rank] += 1
            conn.modes[token] = mode
            conn.pending.pop(token, None)  # an unsent tick in the old mode
        self._regroup(conn)
        if new_token:
            self._on_interest_change()

    def unsubscribe(self, conn: Connection, tokens: list[int]) -> None:
        gone = False
        for token in tokens:
            mode = conn.modes.pop(token, None)
            if mode is None:
                continue
            self.subscriptions -= 1
            conn.pending.pop(token, None)
            counts = self._modes[token]
            counts[MODE_RANK[mode]] -= 1
            if not any(counts):
                del self._modes[token]
                gone = True
        self._regroup(conn)
        if gone:
            self._on_interest_change()

    def _regroup(self, conn: Connection) -> None:
        """Move ``conn`` to the group of its current subscriptions."""
        key = frozenset(conn.modes.items())
        old = conn.group
        if old is not None:
            if old.key == key:
                return
            old.members.discard(conn)
            if not old.members:
                del self._groups[old.codec, old.key]
                for token, _mode in old.key:
                    groups = self.by_token[token]
                    del groups[old]
                    if not groups:
                        del self.by_token[token]
        conn.group = None
        if not key:
            return
        group = self._groups.get((conn.codec, key))
        if group is None:
            group = self._groups[conn.codec, key] = _Group(key, conn.codec)
            for token, mode in key:
                self.by_token.setdefault(token, {})[group] = mode
        group.members.add(conn)
        conn.group = group

    def interest(self) -> dict[int, Mode]:
        """Instruments local clients want, with the richest mode asked for."""
        return {
            token: Mode.FULL if counts[2] else Mode.QUOTE if counts[1] else Mode.LTP
            for token, counts in self._modes.items()
        }

    # -- delivery -------------------------------------------------------------------------

    def deliver(self, token: int, full: dict[str, Any]) -> None:
        """One tick to every group subscribed to ``token``, serialised once per mode."""
        groups = self.by_token.get(token)
        if not groups:
            return
        encoded: dict[tuple[Codec, Mode], bytes] = {}
        ready = self._ready
        for group, mode in groups.items():
            codec = group.codec
            data = encoded.get((codec, mode))
            if data is None:
                data = encoded[codec, mode] = codec.tick(full, mode)
            pending = group.pending
            if not pending:
                ready.append(group)
            pending[token] = data

    def send_ready(self) -> None:
        """Send what ``deliver`` queued (call once per flush or fan-out message): one frame
        per group, sent as is to each member that is free, merged into the others' queues."""
        ready = self._ready
        while ready:  # taken one at a time: a group is never left out with ticks queued
            group = ready.popleft()
            pending, group.pending = group.pending, {}
            frame, ticks = group.codec.frame(pending)
            for conn in tuple(group.members):
                if conn.inflight is None and not conn.pending and not conn.control:
                    if not conn.finished.is_set():
                        self._send(conn, frame, ticks)
                else:
                    conn.pending.update(pending)
                    self.pump(conn)

    def queue_ticks(self, conn: Connection, ticks: dict[int, bytes]) -> None:
        conn.pending.update(ticks)
        self.pump(conn)

    def push(self, conn: Connection, message: bytes, kind: str | None = None) -> None:
        """A control message (never coalesced); an overflowing queue closes with 1013.
        ``kind`` labels ``ticker_ws_messages_total`` (None: the caller counts)."""
        if conn.finished.is_set():
            return
        if len(conn.control) >= self._queue_limit:
            self._slow(conn, "send queue full")
            return
        conn.control.append(message)
        self.pump(conn)
        if kind is not None:
            self._metrics.ws_messages.labels(direction="out", type=kind).inc()

    def push_account(self, account: str, message: bytes, kind: str) -> None:
        for conn in self.by_account.get(account, ()):
            if conn.codec is JSON_CODEC:
                self.push(conn, message, kind)
            else:
                data = conn.codec.control(account, message, kind)
                if data is not None:
                    self.push(conn, data, kind)

    def broadcast(self, message: bytes, kind: str) -> None:
        for conn in self.connections:
            if conn.codec is JSON_CODEC:
                self.push(conn, message)
            else:
                data = conn.codec.control(conn.account, message, kind)
                if data is not None:
                    self.push(conn, data)
        self._metrics.ws_messages.labels(direction="out", type=kind).inc(len(self.connections))

    def pump(self, conn: Connection) -> None:
        """Send ``conn``'s queues, control first, until empty or until a send must wait."""
        if conn.inflight is not None or conn.finished.is_set():
            return
        while conn.control or conn.pending:
            if conn.control:
                frame, ticks = conn.control.popleft(), 0
            else:
                pending, conn.pending = conn.pending, {}
                frame, ticks = conn.codec.frame(pending)
            if not self._send(conn, frame, ticks):
                return

    def _send(self, conn: Connection, frame: bytes, ticks: int) -> bool:
        """Send one frame in place; False if it must wait (it then completes in a task, which
        pumps the rest) or the socket is gone. The socket's ``write_now`` goes first: it
        writes without a coroutine when the socket can take the frame at once (the common
        case); when it cannot, ``send`` decides (and waits, or raises)."""
        try:
            if conn.write_now(frame):
                self.frames_sent += 1
                self.ticks_sent += ticks
                return True
            suspended = sender.start(conn.send, frame)
        except Exception:  # the socket is gone; the session's reader sees it too
            conn.finish()
            return False
        if suspended is not None:  # the client is behind: finish this send in a task
            conn.busy_since = time.monotonic()
            conn.inflight = task = asyncio.ensure_future(sender.finish(*suspended))
            task.add_done_callback(partial(self._sent, conn, ticks))
            return False
        self.frames_sent += 1
        self.ticks_sent += ticks
        return True

    def _sent(self, conn: Connection, ticks: int, task: asyncio.Future[None]) -> None:
        conn.inflight = conn.busy_since = None
        if task.cancelled():
            return
        if task.exception() is not None:
            conn.finish()
            return
        self.frames_sent += 1
        self.ticks_sent += ticks
        self.pump(conn)

    def sync_counters(self) -> None:
        frames, ticks = self._synced
        self._metrics.ws_frames_sent.inc(self.frames_sent - frames)
        self._metrics.ticks_sent.inc(self.ticks_sent - ticks)
        self._synced = (self.frames_sent, self.ticks_sent)

    # -- policing -------------------------------------------------------------------------

    def _slow(self, conn: Connection, why: str) -> None:
        if conn.finished.is_set():
            return
        log.info("closing a slow WebSocket client (%s): account %s", why, conn.account)
        self._metrics.ws_slow_disconnects.inc()
        conn.finish(TRY_AGAIN, "slow consumer")

    def sweep(self, now: float) -> None:
        """Close clients that stay behind or went idle (called about once a second)."""
        for conn in list(self.connections):
            if conn.busy_since is not None and now - conn.busy_since > self._slow_seconds:
                self._slow(conn, f"blocked for {now - conn.busy_since:.1f} s")
            elif now - conn.last_seen > self._idle_seconds:
                conn.finish(
                    POLICY,
                    "idle timeout",
                    error("IDLE_TIMEOUT", f"no message for {self._idle_seconds:g} s"),
                )


def _frame(pending: dict[int, bytes]) -> tuple[bytes, int]:
    """One frame for these ticks, and how many it carries."""
    if len(pending) == 1:
        return next(iter(pending.values())), 1
    return b"".join((TICKS_HEAD, b",".join(pending.values()), TICKS_TAIL)), len(pending)
