"""``ROLE=all`` on PostgreSQL: hold the journal's claim, or wait for it as a standby.

The claim (``app.store.claims``) is an advisory lock held by a session of its own, plus a fence
token. The journal's own session checks the token once, when it starts, under the writer's
lock it then holds to its end (``writer_session``); each group checks only that the claim is
still held here (``guard``). A standby polls for the lock; once the holder's session ends it
takes a new token, ends the old holder's journal session (so no late commit of the old holder
lands), and then rebuilds the books.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from app.services.orders.journal import JournalUnit
from app.store.claims import JOURNAL_FENCE, JOURNAL_LOCK_KEY, PostgresClaim, hold_journal_writer
from app.store.commits import JournalTransaction
from app.store.database import Database
from app.store.fences import StaleFence, fence_holder, take_fence

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger(__name__)


class JournalClaimService:
    def __init__(
        self,
        *,
        database: Database,
        holder: str,
        poll_seconds: float = 1.0,
        check_timeout: float = 5.0,
    ) -> None:
        self._database = database
        self._lock = PostgresClaim(database)
        self.holder = holder
        self._poll = poll_seconds
        self._check_timeout = check_timeout
        self.token: int | None = None
        self.status = "standby"
        self.held_by: str | None = None  # the holder we wait for, as its fence row names it

    @property
    def journal(self) -> str:
        url = self._database.engine.url
        return f"the journal in PostgreSQL database {url.database!r} on {url.host}"

    def _held_token(self) -> int:
        if self.token is None or self.status != "held":
            raise StaleFence("this process does not hold the journal claim")
        return self.token

    def guard(self, _tx: JournalTransaction, _units: list[JournalUnit]) -> None:
        """Journal transaction hook: no group goes out once the claim is known lost (the
        database's side of the check is the session's: ``writer_session``)."""
        self._held_token()

    async def writer_session(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Journal session hook: a new session writes only under the writer's lock, and only
        while the token is still ours."""
        await hold_journal_writer(conn, self._held_token(), self._check_timeout)

    async def try_take(self) -> bool:
        if not await self._lock.try_acquire():
            return False
        try:
            # Bumped only after the lock is ours; then the sessions that wrote under the old
            # token are ended, before the books are read: a commit of the previous holder is
            # either in what we read, or never happens (app.store.claims).
            token = await take_fence(self._database, JOURNAL_FENCE, self.holder)
            await self._lock.end_writers(self._check_timeout)
        except BaseException:
            await self._lock.release()
            raise
        self.token = token
        self.status, self.held_by = "held", None
        log.info("journal claim taken", extra={"token": self.token, "holder": self.holder})
        return True

    async def wait(self) -> None:
        """Standby: poll until the holder's session ends and the claim is ours."""
        unreachable = False
        while True:
            try:
                if await self.try_take():
                    return
                self.held_by = await fence_holder(self._database, JOURNAL_FENCE)
                unreachable = False
            except Exception as exc:  # the database is away: keep waiting for it
                if not unreachable:  # once per outage, not once per poll
                    log.warning("cannot reach PostgreSQL for the journal claim: %s", exc)
                unreachable = True
            await asyncio.sleep(self._poll)

    async def keep(self) -> None:
        """While holding: return once the lock's session ended (the lock went with it)."""
        while True:
            await asyncio.sleep(self._poll)
            if not await self._lock.alive(self._check_timeout):
                self.status = "lost"
                await self._lock.release()  # drop the dead connection; ``wait`` opens another
                log.error("journal claim lost: its PostgreSQL session ended")
                return

    def waiting_for(self) -> str:
        held_by = f", held by {self.held_by}" if self.held_by else ""
        return (
            f"standby: waiting for the journal claim (advisory lock {JOURNAL_LOCK_KEY} on "
            f"{self.journal}{held_by})"
        )

    def is_held(self) -> bool:
        return self.status == "held"

    def health(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "kind": "postgresql advisory lock + fence",
            "token": self.token,
            "holder": self.holder if self.status == "held" else self.held_by,
        }

    async def release(self) -> None:
        await self._lock.release()
