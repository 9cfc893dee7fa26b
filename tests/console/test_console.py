"""The console in headless Chromium against a live server, used like a person uses it: type
the key, click, read the page. Orders that move the market are placed through the API by
another account, as another desk would."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.console.conftest import OPS_KEY, TRADER, TRADER_KEY
from tests.console.support import LiveServer, PageWatch
from tests.services.webhooks.receiver import Receiver
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B, READER_KEY

INFY = "NSE:INFY"


async def log_in(page: Page, server: LiveServer, key: str, symbol: str = INFY) -> None:
    await page.goto(f"{server.url}/console#{symbol}")
    await page.get_by_label("API key").fill(key)
    await page.get_by_label("API key").press("Enter")
    await expect(page.locator("#m-symbol")).to_contain_text(symbol)


async def place(http: httpx.AsyncClient, headers: dict[str, str], **order: str) -> dict:
    body = {"symbol": INFY, "type": "limit", **order}
    response = await http.post("/orders", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def ladder_row(page: Page, side: str, price: str):
    return page.locator(f"#ladder-{side}s tr", has=page.locator("td.price", has_text=price))


class TestServing:
    async def test_console_files_and_favicon(self, http: httpx.AsyncClient) -> None:
        page = await http.get("/console")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert f"ws://127.0.0.1:{http.base_url.port}" in policy
        forged = await http.get("/console", headers={"Host": "x;script-src:*"})
        assert "x;script-src" not in forged.headers["content-security-policy"]
        script = await http.get("/console/assets/main.js")
        assert script.headers["content-type"].startswith("text/javascript")
        icon = await http.get("/favicon.ico")
        assert icon.status_code == 200
        assert icon.headers["content-type"] == "image/svg+xml"
        for missing in ("/console/assets/nope.js", "/console/assets/..%2Fmain.py"):
            response = await http.get(missing)
            assert response.status_code == 404, missing
            assert response.json()["error"]["code"] == "NOT_FOUND"


class TestLogin:
    async def test_refused_key_is_said(self, page: Page, server: LiveServer, watch: PageWatch):
        watch.allow("/me", 401)
        await page.goto(f"{server.url}/console")
        await page.get_by_label("API key").fill("not-a-key-0123456789abcdef")
        await page.get_by_role("button", name="Log in").click()
        await expect(page.locator("#login-error")).to_contain_text("UNAUTHENTICATED")
        await expect(page.locator("#tabs")).to_be_hidden()

    async def test_key_revoked_while_logged_in_is_said(
        self, page: Page, server: LiveServer, watch: PageWatch, tokens_dir: Path
    ) -> None:
        watch.allow("/orderbook/", 401)
        watch.allow("/trades/", 401)
        watch.allow("/candles/", 401)
        watch.allow("/instruments?", 401)  # the search box's suggestions
        await log_in(page, server, TRADER_KEY)
        # The trading panel's first reads (orders, fills, positions) done before the key goes:
        # the console passes over a 401 on /positions, but the browser still logs it.
        await expect(page.locator("#positions-note")).to_have_text("No positions.")
        (tokens_dir / "trader.json").unlink()  # the service re-reads its key files
        refused = page.locator("#banner-key")
        for symbol in ["NSE:TCS", INFY] * 10:  # until the service has read its files again
            if await refused.is_visible():
                break
            await page.get_by_label("Instrument", exact=True).fill(symbol)
            await page.get_by_label("Instrument", exact=True).press("Enter")
            await page.wait_for_timeout(500)
        await expect(refused).to_contain_text("refused the key (UNAUTHENTICATED)")
        await expect(page.get_by_label("API key")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0

    async def test_key_kept_for_the_tab_only(self, page: Page, server: LiveServer) -> None:
        await log_in(page, server, TRADER_KEY)
        assert await page.evaluate("sessionStorage.length") == 1
        assert await page.evaluate("localStorage.length") == 0
        await page.reload()  # the same tab: still logged in, no key typed
        await expect(page.locator("#who-account")).to_have_text("trader")

    async def test_read_key_sees_no_ticket(self, page: Page, server: LiveServer) -> None:
        await log_in(page, server, READER_KEY)
        await expect(page.locator("#who-scopes")).to_have_text("read")
        await expect(page.get_by_role("button", name="Market")).to_be_visible()
        await expect(page.get_by_role("button", name="Trading")).to_be_hidden()
        await expect(page.get_by_role("button", name="Operations")).to_be_hidden()
        await expect(page.locator("#ticket")).to_be_hidden()
        await expect(page.get_by_role("button", name="Place order")).to_be_hidden()

    async def test_admin_key_without_read_sees_operations_only(
        self, page: Page, server: LiveServer
    ) -> None:
        await page.goto(f"{server.url}/console")
        await page.get_by_label("API key").fill(OPS_KEY)
        await page.get_by_label("API key").press("Enter")
        await expect(page.locator("#health-status")).to_have_text("ok")
        await expect(page.get_by_role("button", name="Market")).to_be_hidden()
        await expect(page.get_by_role("button", name="Trading")).to_be_hidden()
        await expect(page.locator("#banner-api")).to_contain_text("no read scope")
        await expect(page.locator("#hooks-note")).to_contain_text("this key (ops) has none")


class TestMarket:
    async def test_ladder_and_tape_follow_other_accounts(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        await log_in(page, server, TRADER_KEY)
        await place(http, DESK_B, side="sell", quantity="7", price="1880")
        await place(http, DESK_B, side="buy", quantity="2", price="1870.5")
        await expect(ladder_row(page, "ask", "1880.00")).to_contain_text("7")
        await expect(ladder_row(page, "bid", "1870.50")).to_contain_text("2")
        await expect(page.locator("#ladder-spread")).to_have_text("spread 9.50")

        await place(http, ADMIN, side="buy", quantity="3", price="1880")  # crosses desk-b
        first = page.locator("#tape tr").first
        await expect(first).to_have_class("buy")
        await expect(first).to_contain_text("1880.00")
        await expect(ladder_row(page, "ask", "1880.00")).to_contain_text("4")
        await expect(page.locator("#m-ltp")).to_have_text("1880.00")
        await expect(page.locator("#m-volume")).to_have_text("3")

        await place(http, ADMIN, side="sell", quantity="2", price="1870.5")  # hits the bid
        await expect(page.locator("#tape tr").first).to_have_class("sell")
        await expect(ladder_row(page, "bid", "1870.50")).to_have_count(0)
        chart = page.get_by_role("img", name=re.compile("Candlestick chart"))
        # Live from the tape (1m: the trades may straddle a minute), then history (1d).
        await expect(chart).to_have_attribute("aria-label", re.compile(r"1m, .*close 1870\.50"))
        await page.get_by_role("button", name="1d").click()
        await expect(page.get_by_role("button", name="1d")).to_have_attribute(
            "aria-pressed", "true"
        )
        day = (
            "Candlestick chart, 1d, 1 candles; "
            "last: open 1880.00, high 1880.00, low 1870.50, close 1870.50, volume 5"
        )
        await expect(chart).to_have_attribute("aria-label", day)

    async def test_search_opens_another_instrument(self, page: Page, server: LiveServer) -> None:
        await log_in(page, server, TRADER_KEY)
        await page.get_by_label("Instrument", exact=True).fill("NSE:TCS")
        await page.get_by_label("Instrument", exact=True).press("Enter")
        await expect(page.locator("#m-symbol")).to_contain_text("NSE:TCS")
        await expect(page.locator("#m-ltp")).to_have_text("4102.30")  # tick 0.05: 2 places


class TestTicket:
    async def test_place_amend_cancel(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        await log_in(page, server, TRADER_KEY)
        await page.get_by_role("button", name="Trading").click()
        await page.get_by_label("Quantity").fill("2")
        await page.get_by_label("Price", exact=True).fill("1850.03")  # off the 0.05 grid
        await page.get_by_label("Price", exact=True).press("Enter")
        await expect(page.locator("#t-message")).to_have_text("price must be a multiple of 0.05")
        listed = await http.get("/orders", headers=TRADER)
        assert listed.json()["items"] == []  # checked before sending: nothing was sent

        await page.get_by_label("Price", exact=True).fill("1850.05")
        await page.keyboard.press("Enter")
        await expect(page.locator("#t-message")).to_contain_text(": open")
        (order,) = (await http.get("/orders", headers=TRADER)).json()["items"]
        row = page.locator(f'#working tr[data-order-id="{order["order_id"]}"]')
        await expect(row).to_contain_text("1850.05")

        await row.get_by_role("button", name="Amend").click()
        await row.get_by_label(re.compile("New quantity")).fill("3")
        await row.get_by_label(re.compile("New price")).fill("1851")
        await row.get_by_label(re.compile("New price")).press("Enter")
        await expect(row).to_contain_text("1851.00")
        amended = (await http.get(f"/orders/{order['order_id']}", headers=TRADER)).json()
        assert (amended["price"], amended["remaining_quantity"]) == ("1851", "3")

        await row.get_by_role("button", name="Cancel").click()
        await expect(row).to_have_count(0)
        cancelled = (await http.get(f"/orders/{order['order_id']}", headers=TRADER)).json()
        assert cancelled["status"] == "cancelled"

    async def test_stop_limit_with_keyboard_only(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        await log_in(page, server, TRADER_KEY)
        await page.get_by_role("button", name="Trading").click()
        await page.get_by_label("Type").focus()
        await page.keyboard.press("End")  # the last type: stop-limit
        await expect(page.get_by_label("Post-only")).to_be_disabled()
        for label, text in (("Quantity", "5"), ("Price", "1881"), ("Trigger price", "1880.02")):
            await page.keyboard.press("Tab")
            await expect(page.get_by_label(label, exact=True)).to_be_focused()
            await page.keyboard.type(text)
        await page.keyboard.press("Enter")
        await expect(page.locator("#t-message")).to_have_text(
            "trigger price must be a multiple of 0.05"
        )
        await expect(page.get_by_label("Trigger price")).to_be_focused()
        await page.keyboard.press("Backspace")
        await page.keyboard.press("Enter")  # 1880.0
        await expect(page.locator("#t-message")).to_contain_text(": pending_trigger")
        (order,) = (await http.get("/orders", headers=TRADER)).json()["items"]
        assert (order["type"], order["price"], order["trigger_price"]) == (
            "stop_limit",
            "1881",
            "1880",
        )
        await expect(page.locator("#working tr")).to_contain_text("pending_trigger")

    async def test_fill_arrives_live(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        await log_in(page, server, TRADER_KEY)
        await page.get_by_role("button", name="Trading").click()
        await page.get_by_label("Quantity").fill("4")
        await page.get_by_label("Price", exact=True).fill("1860")
        await page.get_by_role("button", name="Place order").click()
        await expect(page.locator("#working tr")).to_have_count(1)
        await expect(page.locator("#t-quote")).to_contain_text("bid 1860.00 × 4")
        await place(http, DESK_B, side="sell", quantity="1", price="1860")
        await expect(page.locator("#fills tr").first).to_contain_text("1860.00")
        await expect(page.locator("#working tr").first).to_contain_text("partially_filled")
        row = page.locator('#positions tr[data-symbol="NSE:INFY"]')
        await expect(row.locator("td").nth(1)).to_have_text("1")  # the fill moved the position

    async def test_positions_when_the_service_has_them(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        """Runs once GET /positions exists (the trading-day issue): the panel shows it."""
        if "/positions" not in (await http.get("/openapi.json")).json()["paths"]:
            pytest.skip("GET /positions is not in this build (the trading-day issue adds it)")
        await log_in(page, server, TRADER_KEY)
        await page.get_by_role("button", name="Trading").click()
        await place(http, DESK_B, side="sell", quantity="3", price="1880")
        await place(http, TRADER, side="buy", quantity="3", price="1880")
        row = page.locator('#positions tr[data-symbol="NSE:INFY"]')
        await expect(row.locator("td").nth(1)).to_have_text("3")
        await expect(row.locator("td").nth(2)).to_have_text("1880.00")

    async def test_rejected_order_shows_code(
        self, page: Page, server: LiveServer, watch: PageWatch
    ) -> None:
        watch.allow("/orders", 422)
        await log_in(page, server, TRADER_KEY)
        await page.get_by_role("button", name="Trading").click()
        await page.get_by_label("Quantity").fill("1")
        await page.get_by_label("Price", exact=True).fill("3000")  # far outside the band
        await page.get_by_role("button", name="Place order").click()
        await expect(page.locator("#t-message")).to_contain_text("PRICE_OUT_OF_BAND")


class TestOperations:
    async def test_halt_and_resume(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        await log_in(page, server, ADMIN_KEY, "NSE:TCS")
        await page.get_by_role("button", name="Operations").click()
        await expect(page.locator("#health-status")).to_have_text("ok")
        halted = page.locator("#halted li", has_text="NSE:TCS")
        await expect(halted).to_have_count(0)
        await page.get_by_role("button", name="Halt NSE:TCS").click()
        await expect(halted).to_have_count(1)
        tcs = (await http.get("/instruments?q=tcs", headers=ADMIN)).json()["items"][0]
        assert tcs["status"] == "halted"
        await expect(page.locator("#f-ws")).not_to_have_text("—")
        await halted.get_by_role("button", name="Resume NSE:TCS").click()
        await expect(halted).to_have_count(0)

    async def test_webhook_deliveries_and_retry(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient
    ) -> None:
        with Receiver() as receiver:
            created = await http.post(
                "/advanced/webhooks", json={"url": receiver.url()}, headers=ADMIN
            )
            assert created.status_code == 201, created.text
            endpoint = created.json()["id"]
            sent = await http.post(f"/advanced/webhooks/{endpoint}/test", headers=ADMIN)
            delivery = sent.json()["id"]
            await log_in(page, server, ADMIN_KEY)
            await page.get_by_role("button", name="Operations").click()
            await expect(page.locator("#hooks-note")).to_contain_text("account default only")
            await page.get_by_role("button", name=f"Deliveries of {endpoint}").click()
            row = page.locator("#deliveries tr", has_text=delivery)
            await expect(row.locator("td").nth(3)).to_have_text("1")
            await row.get_by_role("button", name=f"Retry {delivery}").click()
            await expect(row.locator("td").nth(3)).to_have_text("2")
        assert len([m for m in receiver.received if m.message_id == delivery]) == 2


class TestReconnect:
    async def test_socket_dropped_by_restart_reconnects(
        self, page: Page, server: LiveServer, http: httpx.AsyncClient, watch: PageWatch
    ) -> None:
        watch.restarts = True
        await log_in(page, server, TRADER_KEY)
        await place(http, DESK_B, side="sell", quantity="5", price="1890")
        await expect(ladder_row(page, "ask", "1890.00")).to_be_visible()
        await server.stop()
        banner = page.locator("#banner-ticker")
        await expect(banner).to_contain_text("reconnecting")
        await server.start()
        await expect(banner).to_be_hidden(timeout=20_000)
        await expect(page.locator("#banner-orders")).to_be_hidden(timeout=20_000)
        await place(http, DESK_B, side="sell", quantity="6", price="1895")
        await expect(ladder_row(page, "ask", "1895.00")).to_contain_text("6")
