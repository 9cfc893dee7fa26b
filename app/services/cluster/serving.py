"""How a process with local books starts serving them, by role (``app.roots`` calls these).

- ``serve_books``: rebuild the books from the journal and run its writer (``ROLE=all`` on
  SQLite, where ``build_all`` already holds the file lock beside the database).
- ``hold_journal_claim``: ``ROLE=all`` on PostgreSQL: take the journal's claim (advisory lock
  + fence) and serve, or stay a standby that takes over when the holder's session ends.
- ``run_matcher``: ``ROLE=matcher``: standby until the shard's lease is ours, then fence the
  journal with the lease's token, rebuild the books and consume the shard's stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

from app.background import BackgroundTasks
from app.services.cluster.claim import JournalClaimService
from app.services.cluster.lease import ShardLease
from app.services.cluster.matcher import Matcher
from app.services.orders.journal import JournalUnit
from app.services.orders.service import OrderService
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.fences import StaleFence, guard_fence, install_fence, stored_fence

log = logging.getLogger(__name__)


async def serve_books(orders: OrderService, background: BackgroundTasks) -> None:
    await orders.start()
    _take_orders(orders, background)


def _take_orders(orders: OrderService, background: BackgroundTasks) -> None:
    """The books are built: the journal takes units again, its writer running."""
    orders.journal.resume()
    background.start("journal-writer", orders.journal.run())


async def hold_journal_claim(
    *, database: Database, orders: OrderService, holder: str, background: BackgroundTasks
) -> JournalClaimService:
    """Hold the journal's claim and serve; or, if another process holds it, stay a standby
    (alive, not ready, refusing orders) that takes over when the holder's session ends."""
    claim = JournalClaimService(database=database, holder=holder)
    orders.journal.add_transaction_hook(claim.guard)
    orders.journal.add_session_hook(claim.writer_session)
    if await claim.try_take():
        await serve_books(orders, background)
        background.start("journal-claim", _keep_journal(claim, orders))
        return claim
    orders.journal.suspend(claim.waiting_for())
    log.warning("another process holds the journal; %s", claim.waiting_for())

    async def standby() -> None:
        await _take_back(claim, orders)
        _take_orders(orders, background)
        log.info("journal claim taken over; books rebuilt, serving orders")
        await _keep_journal(claim, orders)

    background.start("journal-claim", standby())
    return claim


async def _keep_journal(claim: JournalClaimService, orders: OrderService) -> None:
    """Hold the claim. If its session ends (database restart, network cut), stop taking
    orders until the claim is ours again, then rebuild the books: another process may have
    held it and written in between. No restart needed, as for any journal outage."""
    while True:
        await claim.keep()
        orders.suspend(claim.waiting_for())
        # What is still queued was computed on books that may be stale: it fails on the
        # claim's guard now, rather than commit under the token taken next.
        await orders.journal.flush()
        await _take_back(claim, orders)
        orders.journal.resume()
        log.info("journal claim taken again; books rebuilt from the journal")


async def _take_back(claim: JournalClaimService, orders: OrderService, retry: float = 1.0) -> None:
    """Wait for the claim, then rebuild the books; if they cannot be read (the database went
    away again), let the claim go and start over, rather than end the task that keeps it."""
    while True:
        await claim.wait()
        try:
            await orders.start()
            return
        except Exception as exc:
            log.warning("journal claim taken, but the books could not be read: %s", exc)
            await claim.release()
            await asyncio.sleep(retry)


async def run_matcher(
    lease: ShardLease,
    matcher: Matcher,
    orders: OrderService,
    database: Database,
    background: BackgroundTasks,
) -> None:
    """Standby until the shard's lease is ours; then rebuild the books and consume."""
    shard = orders.shard.shard_id
    token = await lease.acquire()
    try:
        await install_fence(database, shard, token, lease.holder)
    except StaleFence:
        # We hold the lease, so a larger stored token can only mean Redis lost its counter.
        token = await lease.advance_fence(await stored_fence(database, shard))
        await install_fence(database, shard, token, lease.holder)
        log.warning("fencing counter was behind PostgreSQL; advanced to %s", token)

    def fence(tx: JournalTransaction, _units: list[JournalUnit]) -> None:
        guard_fence(tx, shard, token)

    orders.journal.add_transaction_hook(fence)
    await orders.start()
    background.start("journal-writer", orders.journal.run())
    background.start("shard-lease", lease.keep(_lease_lost(orders)))
    log.info("matcher serving shard %s of %s", shard, orders.shard.shards)
    await matcher.run()


def _lease_lost(orders: OrderService) -> Callable[[], None]:
    def lost() -> None:
        # Another matcher may own the shard now: take no more orders, and exit so the
        # orchestrator restarts this process as a standby.
        orders.suspend("shard lease lost")
        log.error("shard lease lost; stopping this matcher")
        os.kill(os.getpid(), signal.SIGTERM)

    return lost
