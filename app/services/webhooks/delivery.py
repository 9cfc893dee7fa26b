"""One delivery attempt: check the target again, sign, POST, note status or error.

Only the status counts: at most a small response body is read (so the connection can be
reused), redirects are not followed (a redirect could point anywhere), and proxies from the
environment are ignored (the connection must go to the address that was checked). httpx's
read timeout applies per read, so an attempt also has an overall limit: a receiver dripping
bytes cannot hold a slot longer than ``attempt_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx

from app.errors import AppError
from app.metrics import Metrics
from app.services.webhooks.claims import Claimed, Outcome
from app.services.webhooks.signing import signed_headers
from app.services.webhooks.ssrf import TargetPolicy, TargetResolver

log = logging.getLogger(__name__)

USER_AGENT = "ticker-service-webhooks/1"
_MAX_BODY_READ = 64 * 1024


class Sender:
    """Attempts, over one small connection pool per endpoint: httpcore's pool costs time in
    proportion to its connections on every request, and a hanging endpoint's connections
    stay out of everyone else's way."""

    def __init__(
        self,
        *,
        metrics: Metrics,
        policy: TargetPolicy,
        connect_timeout: float,
        read_timeout: float,
        endpoint_connections: int,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._metrics = metrics
        self._targets = TargetResolver(policy)
        self._clock = clock
        self.attempt_timeout = connect_timeout + 2 * read_timeout
        self._timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
        )
        # Room beyond the dispatcher's per-endpoint limit for a test message sent meanwhile.
        self._limits = httpx.Limits(
            max_connections=endpoint_connections + 2,
            max_keepalive_connections=endpoint_connections + 2,
        )
        self._clients: dict[str, tuple[httpx.AsyncClient, float]] = {}
        # One TLS context for all pools: loading the CA bundle costs ~25 ms of CPU each time.
        self._tls = httpx.create_ssl_context()
        # The attempts table is the delivery log; httpx's INFO line per request would only
        # add cost, and print receiver URLs (which may carry tokens) into the service log.
        logging.getLogger("httpx").setLevel(logging.WARNING)

    def _http(self, endpoint_id: str) -> httpx.AsyncClient:
        found = self._clients.get(endpoint_id)
        client = found[0] if found is not None else None
        if client is None:
            client = httpx.AsyncClient(
                timeout=self._timeout,
                limits=self._limits,
                follow_redirects=False,
                trust_env=False,
                verify=self._tls,
            )
        self._clients[endpoint_id] = (client, time.monotonic())
        return client

    async def prune(self, idle_seconds: float = 300.0) -> None:
        """Close the pools of endpoints nothing was sent to for ``idle_seconds``."""
        cutoff = time.monotonic() - idle_seconds
        for endpoint_id, (client, used) in list(self._clients.items()):
            if used < cutoff:
                del self._clients[endpoint_id]
                await client.aclose()

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        for client, _used in clients.values():
            await client.aclose()

    async def attempt(self, item: Claimed, render: Callable[[Claimed], bytes]) -> Outcome:
        """POST the message once, signed now; never raises."""
        attempted_ns = self._clock()
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            target = await self._targets.check(item.url)
            body = render(item)
            headers = signed_headers(item.secrets, item.message_id, int(time.time()), body)
            headers["host"] = target.host_header
            headers["user-agent"] = USER_AGENT
            extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
            async with (
                asyncio.timeout(self.attempt_timeout),
                self._http(item.endpoint_id).stream(
                    "POST", target.url, content=body, headers=headers, extensions=extensions
                ) as response,
            ):
                status_code = response.status_code
                read = 0
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > _MAX_BODY_READ:
                        break  # not worth a connection: closed instead of reused
        except AppError as exc:  # the target is refused now (e.g. DNS moved it)
            error = exc.message
        except (TimeoutError, httpx.TimeoutException):
            error = "timeout"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:  # whatever else went wrong is this attempt's failure
            log.exception("webhook attempt %s failed unexpectedly", item.message_id)
            error = type(exc).__name__
        duration = time.perf_counter() - started
        self._metrics.webhook_delivery_seconds.observe(duration)
        return Outcome(item, attempted_ns, status_code, error and error[:300], duration)
