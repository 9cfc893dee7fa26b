"""The README's screenshots (docs/console/*.png), one per view, on a market with some depth
and trades: always saved among the artefacts; ``UPDATE_SCREENSHOTS=1`` writes the README's
copies. Each view is checked to show what its screenshot is meant to show."""

from __future__ import annotations

import httpx
from playwright.async_api import Page, expect

from tests.console.support import LiveServer, shoot
from tests.console.test_console import log_in, place
from tests.services.webhooks.receiver import Receiver
from tests.support.trading import ADMIN, ADMIN_KEY, DESK_B


async def market_scene(http: httpx.AsyncClient) -> None:
    """Eight levels a side, a few trades each way, and the account's own working orders."""
    for step in range(8):
        await place(
            http, DESK_B, side="sell", quantity=str(3 + step * 2), price=f"{1876 + step * 0.5:.2f}"
        )
        await place(
            http, DESK_B, side="buy", quantity=str(4 + step * 3), price=f"{1874 - step * 0.5:.2f}"
        )
    takers = [("2", "buy", "1876"), ("3", "sell", "1874"), ("4", "buy", "1876.5"),
              ("1", "sell", "1873.5"), ("5", "buy", "1877")]  # fmt: skip
    for quantity, side, price in takers:  # seven trades; 1876, 1876.5 and 1874 taken out
        await place(http, ADMIN, side=side, quantity=quantity, price=price)
    await place(http, ADMIN, side="buy", quantity="6", price="1860")
    await place(http, ADMIN, side="sell", quantity="2", price="1890.25")


class TestScreenshots:
    async def test_each_view(self, page: Page, server: LiveServer, http: httpx.AsyncClient) -> None:
        await market_scene(http)
        with Receiver() as receiver:
            hook = await http.post("/advanced/webhooks", json={"url": receiver.url(),
                                   "description": "risk desk"}, headers=ADMIN)  # fmt: skip
            endpoint = hook.json()["id"]
            await http.post(f"/advanced/webhooks/{endpoint}/test", headers=ADMIN)
            await http.post("/admin/instruments/2953217/halt", headers=ADMIN)  # NSE:TCS

            await log_in(page, server, ADMIN_KEY)
            await expect(page.locator("#ladder-asks tr")).to_have_count(7)
            await expect(page.locator("#ladder-bids tr")).to_have_count(8)
            await expect(page.locator("#tape tr")).to_have_count(7)
            await shoot(page, "market", docs=True)
            await page.emulate_media(color_scheme="dark")
            await shoot(page, "market-dark", docs=True)
            await page.emulate_media(color_scheme="light")

            await page.get_by_role("button", name="Trading").click()
            await page.get_by_label("Quantity").fill("10")
            await page.get_by_label("Price", exact=True).fill("1872.5")
            await expect(page.locator("#working tr")).to_have_count(2)
            await expect(page.locator("#fills tr")).to_have_count(7)
            await shoot(page, "trading", docs=True)

            await page.get_by_role("button", name="Operations").click()
            await page.get_by_role("button", name=f"Deliveries of {endpoint}").click()
            await expect(page.locator("#deliveries tr")).to_have_count(1)
            await expect(page.locator("#halted li", has_text="NSE:TCS")).to_have_count(1)
            await expect(page.locator("#f-orders")).not_to_have_text("—")
            await shoot(page, "operations", docs=True)
