"""Where webhooks may go: http(s) URLs whose host resolves only to public addresses.

Checked at registration and again before every attempt (DNS can change). The attempt then
connects to the address that was checked (the URL's host is swapped for it; ``Host`` and
TLS SNI keep the name), so a rebinding between the check and the connection cannot redirect
it. Loopback and private/link-local targets are refused unless the policy allows them;
unspecified, multicast and reserved addresses are always refused.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from app.errors import ValidationFailed

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_URL_LENGTH = 2048
# Carrier-grade NAT is not "private" to ipaddress (3.11) but is no public target either.
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class InvalidWebhookUrl(ValidationFailed):
    code = "INVALID_WEBHOOK_URL"
    message = "the webhook URL must be an absolute http(s) URL"


class WebhookTargetForbidden(ValidationFailed):
    code = "WEBHOOK_TARGET_FORBIDDEN"
    message = "webhook targets on private, loopback or link-local addresses are not allowed"


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    allow_loopback: bool = False
    allow_private: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """An attempt's destination: ``url`` with the checked address, plus the original name."""

    url: httpx.URL
    host_header: str
    sni_hostname: str | None


def parse_url(url: str) -> httpx.URL:
    if len(url) > MAX_URL_LENGTH:
        raise InvalidWebhookUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        parsed = httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidWebhookUrl(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise InvalidWebhookUrl("the URL must use http or https")
    if not parsed.host:
        raise InvalidWebhookUrl("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhookUrl("the URL must not carry credentials")
    if port == 0:
        raise InvalidWebhookUrl("the URL's port must be 1-65535")
    return parsed


def refusal(address: IPAddress, policy: TargetPolicy) -> str | None:
    """Why ``address`` is not a permitted target (None when it is)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_unspecified or address.is_multicast:
        return "an unspecified or multicast address"
    # The refusals a deployment can lift name the setting that lifts them.
    if address.is_loopback:
        if policy.allow_loopback:
            return None
        return "a loopback address (allowed with WEBHOOK_ALLOW_LOOPBACK=true)"
    if address.is_link_local or address.is_private or address in _SHARED:
        if policy.allow_private:
            return None
        return "a private or link-local address (allowed with WEBHOOK_ALLOW_PRIVATE_TARGETS=true)"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidWebhookUrl(f"the host {host!r} does not resolve") from exc
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise InvalidWebhookUrl(f"the host {host!r} does not resolve")
    return addresses


async def check_target(url: str, policy: TargetPolicy) -> Target:
    """Validate ``url`` and resolve it; every address it resolves to must be permitted."""
    parsed = parse_url(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await resolve(parsed.host, port)
    for address in addresses:
        reason = refusal(address, policy)
        if reason is not None:
            raise WebhookTargetForbidden(
                f"the webhook host {parsed.host!r} resolves to {reason} ({address})"
            )
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return Target(
        url=parsed.copy_with(host=str(addresses[0])),
        host_header=host if parsed.port is None else f"{host}:{parsed.port}",
        sni_hostname=parsed.host if parsed.scheme == "https" else None,
    )


class TargetResolver:
    """``check_target`` for every attempt, with a short memory: a checked target is reused
    for ``ttl`` seconds (URL parsing and a DNS lookup per attempt add up at thousands of
    deliveries a second). Still safe against rebinding: the connection goes to the address
    that was checked, whatever DNS says meanwhile."""

    def __init__(
        self,
        policy: TargetPolicy,
        *,
        ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        size: int = 4096,
    ) -> None:
        self._policy = policy
        self._ttl = ttl
        self._clock = clock
        self._size = size
        self._checked: dict[str, tuple[float, Target]] = {}

    async def check(self, url: str) -> Target:
        now = self._clock()
        found = self._checked.get(url)
        if found is not None and found[0] > now:
            return found[1]
        target = await check_target(url, self._policy)
        if len(self._checked) >= self._size:
            self._checked.clear()
        self._checked[url] = (now + self._ttl, target)
        return target
