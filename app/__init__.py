"""Ticker and order-routing service."""

__version__ = "0.1.0"
