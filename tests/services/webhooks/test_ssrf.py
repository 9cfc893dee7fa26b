"""Webhook targets: http(s) only; loopback, private and link-local refused unless allowed."""

from __future__ import annotations

import pytest

from app.services.webhooks.ssrf import (
    InvalidWebhookUrl,
    TargetPolicy,
    TargetResolver,
    WebhookTargetForbidden,
    check_target,
)

STRICT = TargetPolicy()


class TestCheckTarget:
    @pytest.mark.parametrize(
        "url",
        [
            "http://10.0.0.1/hook",
            "http://172.16.5.4/hook",
            "http://192.168.1.1/hook",
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:8080/hook",
            "http://localhost:8080/hook",
            "http://[::1]/hook",
            "http://[::ffff:127.0.0.1]/hook",
            "http://[fd00::1]/hook",
            "http://[fe80::1]/hook",
            "http://100.64.0.1/hook",
            "http://0.0.0.0/hook",
            "http://224.0.0.1/hook",
        ],
    )
    async def test_refuses_non_public_targets(self, url: str) -> None:
        with pytest.raises(WebhookTargetForbidden) as caught:
            await check_target(url, STRICT)
        assert caught.value.code == "WEBHOOK_TARGET_FORBIDDEN"
        assert caught.value.status == 422

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/hook",
            "file:///etc/passwd",
            "gopher://127.0.0.1/",
            "//example.com/hook",
            "http:///hook",
            "http://user:pass@93.184.216.34/hook",
            "http://93.184.216.34:0/hook",
            "http://93.184.216.34:99999/hook",
            "not a url",
            "https://example.com/" + "a" * 2048,
        ],
    )
    async def test_refuses_malformed_urls(self, url: str) -> None:
        with pytest.raises(InvalidWebhookUrl) as caught:
            await check_target(url, STRICT)
        assert caught.value.code == "INVALID_WEBHOOK_URL"

    async def test_unresolvable_host_is_refused(self) -> None:
        with pytest.raises(InvalidWebhookUrl, match="does not resolve"):
            await check_target("https://no-such-host.invalid/hook", STRICT)

    @pytest.mark.parametrize(
        ("url", "setting"),
        [
            ("http://127.0.0.1:8080/hook", "WEBHOOK_ALLOW_LOOPBACK=true"),
            ("http://[::1]/hook", "WEBHOOK_ALLOW_LOOPBACK=true"),
            ("http://10.0.0.1/hook", "WEBHOOK_ALLOW_PRIVATE_TARGETS=true"),
            ("http://169.254.169.254/", "WEBHOOK_ALLOW_PRIVATE_TARGETS=true"),
        ],
    )
    async def test_a_refusal_names_the_setting_that_lifts_it(self, url: str, setting: str) -> None:
        with pytest.raises(WebhookTargetForbidden) as caught:
            await check_target(url, STRICT)
        assert setting in caught.value.message

    async def test_an_address_no_setting_allows_names_none(self) -> None:
        with pytest.raises(WebhookTargetForbidden) as caught:
            await check_target("http://0.0.0.0/hook", STRICT)
        assert "WEBHOOK_ALLOW" not in caught.value.message

    async def test_loopback_when_allowed(self) -> None:
        policy = TargetPolicy(allow_loopback=True)
        target = await check_target("http://localhost:8080/hook?x=1", policy)
        assert str(target.url) == "http://127.0.0.1:8080/hook?x=1"
        assert target.host_header == "localhost:8080"
        assert target.sni_hostname is None
        with pytest.raises(WebhookTargetForbidden):
            await check_target("http://10.0.0.1/hook", policy)

    async def test_private_when_allowed(self) -> None:
        policy = TargetPolicy(allow_private=True)
        for url in ("http://10.0.0.1/hook", "http://169.254.169.254/", "http://[fd00::1]/"):
            await check_target(url, policy)
        with pytest.raises(WebhookTargetForbidden):
            await check_target("http://127.0.0.1/hook", policy)
        with pytest.raises(WebhookTargetForbidden):
            await check_target("http://0.0.0.0/hook", TargetPolicy(True, True))

    async def test_public_address_is_pinned_with_name_kept(self) -> None:
        target = await check_target("https://93.184.216.34/hook", STRICT)
        assert str(target.url) == "https://93.184.216.34/hook"
        assert target.host_header == "93.184.216.34"
        assert target.sni_hostname == "93.184.216.34"
        target = await check_target("https://[2606:2800:220:1::]:8443/h", STRICT)
        assert target.host_header == "[2606:2800:220:1::]:8443"


class TestTargetResolver:
    async def test_reuses_a_checked_target_for_its_ttl(self) -> None:
        now = [100.0]
        resolver = TargetResolver(TargetPolicy(allow_loopback=True), ttl=5, clock=lambda: now[0])
        first = await resolver.check("http://localhost:9/hook")
        assert await resolver.check("http://localhost:9/hook") is first
        now[0] += 6
        assert await resolver.check("http://localhost:9/hook") is not first

    async def test_a_refusal_is_not_remembered_as_a_target(self) -> None:
        resolver = TargetResolver(STRICT)
        for _ in range(2):
            with pytest.raises(WebhookTargetForbidden):
                await resolver.check("http://127.0.0.1:9/hook")
