"""Positions and P&L per account and instrument, moved by the journaled fills."""
