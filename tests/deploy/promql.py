"""Just enough PromQL reading to list the metric selectors of an alerting rule.

The alerts in alerts.yaml are plain selectors, aggregations and functions; this finds each
selector's metric name and label matchers so a test can check them against a real scrape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_RANGE = re.compile(r"\[[^\]]*\]")
_SELECTOR = re.compile(
    r"(?<![\w.:])(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)\s*(?P<labels>\{[^}]*\})?(?P<after>\s*\(?)"
)
_MATCHER = re.compile(r'(?P<label>[A-Za-z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*"(?P<value>[^"]*)"')
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...]


def selectors(expr: str) -> list[Selector]:
    """The metric selectors in ``expr``: identifiers that are neither functions,
    aggregations, keywords nor the label lists of ``by (...)`` and friends."""
    text = _RANGE.sub("", _GROUPING.sub("", expr))
    found: list[Selector] = []
    for match in _SELECTOR.finditer(text):
        name = match["name"]
        if match["after"].strip() == "(" or name.lower() in _KEYWORDS:
            continue  # a function or aggregation call, or an operator keyword
        labels = match["labels"] or ""
        matchers = tuple(
            Matcher(m["label"], m["op"], m["value"]) for m in _MATCHER.finditer(labels)
        )
        found.append(Selector(name, matchers))
    return found
