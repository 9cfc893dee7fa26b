"""alerts.yaml: promtool checks and unit tests, and every metric it reads is one the service
really exports (names and labels checked against a scrape of a running app)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.settings import Settings
from tests.conftest import running_app
from tests.deploy.promql import Matcher, selectors
from tests.deploy.support import ROOT, assert_ok, load_yaml, run
from tests.services.webhooks.receiver import Receiver, eventually
from tests.services.webhooks.support import FAST_RETRIES, deliveries, place, register
from tests.support.trading import ADMIN, DESK_B, add_accounts, order

ALERTS = ROOT / "alerts.yaml"
# Series Prometheus makes itself, not the service.
SYNTHETIC = {"up"}
# Target labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS)["groups"] for rule in group["rules"]]


class TestPromtool:
    def test_rules_pass_promtool_check(self) -> None:
        assert_ok(run("promtool", "check", "rules", "alerts.yaml"))

    def test_rule_unit_tests_pass(self) -> None:
        assert_ok(run("promtool", "test", "rules", "alerts.test.yaml"))

    def test_every_alert_has_a_test_where_it_fires(self) -> None:
        fired = {
            case["alertname"]
            for test in load_yaml(ROOT / "alerts.test.yaml")["tests"]
            for case in test["alert_rule_test"]
            if case["exp_alerts"]
        }
        assert {rule["alert"] for rule in rules()} - fired == set()

    def test_every_alert_has_severity_and_text(self) -> None:
        for rule in rules():
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


class TestSelectorParsing:
    def test_finds_names_and_matchers_but_not_functions_or_groupings(self) -> None:
        expr = (
            'histogram_quantile(0.99, sum by (job, le) (rate(a_seconds_bucket{x="1"}[5m])))'
            ' > 1e9 and on (instance) absent(up{job=~"t.*"}) or b_total offset 5m'
        )
        found = selectors(expr)
        assert [s.name for s in found] == ["a_seconds_bucket", "up", "b_total"]
        assert found[0].matchers == (Matcher("x", "=", "1"),)
        assert found[1].matchers == (Matcher("job", "=~", "t.*"),)


async def exercised_scrape(settings: Settings) -> str:
    """Run the app, touch what the alerts read (orders that trade, a webhook retried then
    delivered, the health checks, a 404), and return its /metrics text."""
    with Receiver() as receiver:
        receiver.statuses = [503]  # the first attempt fails: a "retrying" outcome
        async with running_app(settings) as (_app, client):
            endpoint = await register(client, receiver.url())
            await place(client, order("sell", "5", "1875.40"))
            (bought,) = await place(client, order("buy", "5", "1875.40"), headers=DESK_B)
            assert bought["status"] == "filled", bought
            assert (await client.get("/health")).status_code == 200
            assert (await client.get("/health/ready")).status_code == 200
            assert (await client.get("/no-such-route", headers=ADMIN)).status_code == 404

            async def delivered() -> bool:
                items = await deliveries(client, endpoint["id"])
                return bool(items) and all(i["status"] == "delivered" for i in items)

            await eventually(delivered)
            response = await client.get("/metrics")
            assert response.status_code == 200
            return response.text


@pytest.fixture
async def scrape_text(make_settings: Callable[..., Settings], tokens_dir: Path) -> str:
    add_accounts(tokens_dir)  # a second account to trade with (no self-trade)
    return await exercised_scrape(make_settings(webhooks=FAST_RETRIES))


def exported(text: str) -> tuple[set[str], dict[str, list[dict[str, str]]]]:
    """Every series name the scrape can answer for, and the label sets seen per name."""
    names: set[str] = set()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        # A family declared without series yet (a labelled metric nobody touched) still
        # counts: its TYPE line proves the service exports it.
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_count", "_sum")}
        else:
            names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
            samples.setdefault(sample.name, []).append(sample.labels)
    return names, samples


def matches(matcher: Matcher, labels: dict[str, str]) -> bool:
    value = labels.get(matcher.label, "")
    if matcher.op == "=":
        return value == matcher.value
    if matcher.op == "=~":
        return re.fullmatch(matcher.value, value) is not None
    return True  # negative matchers need no example


def unexported(alert_rules: list[dict[str, Any]], text: str) -> list[str]:
    """What the rules read that the scrape lacks: a metric name, or a label matcher no
    series satisfies (negative matchers and the target labels need no example)."""
    names, samples = exported(text)
    problems: list[str] = []
    for rule in alert_rules:
        for selector in selectors(rule["expr"]):
            if selector.name in SYNTHETIC:
                continue
            if selector.name not in names:
                problems.append(f"{rule['alert']}: metric {selector.name} is not exported")
                continue
            seen = samples.get(selector.name, [])
            for matcher in selector.matchers:
                if matcher.label in TARGET_LABELS or matcher.op in {"!=", "!~"}:
                    continue
                if matcher.op == "=" and not any(matches(matcher, s) for s in seen):
                    wanted = f'{selector.name}{{{matcher.label}="{matcher.value}"}}'
                    problems.append(f"{rule['alert']}: no series {wanted}")
                elif not any(matcher.label in s for s in seen):
                    problems.append(
                        f"{rule['alert']}: {selector.name} has no label {matcher.label}"
                    )
    return problems


class TestMetricsExist:
    def test_a_missing_name_or_label_is_reported(self) -> None:
        text = (
            "# TYPE ticker_dependency_up gauge\n"
            'ticker_dependency_up{dependency="redis"} 1.0\n'
            "# TYPE http_requests_total counter\n"
            'http_requests_total{handler="/x",method="GET",code="200"} 1.0\n'
        )
        alert_rules = [
            {"alert": "A", "expr": 'ticker_dependency_up{dependency="database"} == 0'},
            {"alert": "B", "expr": 'rate(http_requests_total{status=~"5.."}[5m]) > 0'},
            {"alert": "C", "expr": "ticker_not_there_total > 0 and up == 0"},
        ]
        assert unexported(alert_rules, text) == [
            'A: no series ticker_dependency_up{dependency="database"}',
            "B: http_requests_total has no label status",
            "C: metric ticker_not_there_total is not exported",
        ]

    async def test_every_metric_in_the_alerts_is_exported(self, scrape_text: str) -> None:
        problems = unexported(rules(), scrape_text)
        assert not problems, "alerts.yaml reads what the service does not export:\n" + "\n".join(
            problems
        )

    async def test_status_codes_are_not_grouped(self, scrape_text: str) -> None:
        _names, samples = exported(scrape_text)
        statuses = {labels["status"] for labels in samples["http_requests_total"]}
        assert {"200", "201", "404"} <= statuses
        assert not any(status.endswith("xx") for status in statuses)

    async def test_scrape_passes_promtool_check_metrics(self, scrape_text: str) -> None:
        assert_ok(run("promtool", "check", "metrics", stdin=scrape_text))
