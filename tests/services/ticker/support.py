"""Shared test data for the ticker's unit tests."""

from __future__ import annotations

from tests.support.instruments import infy

INFY = infy()
