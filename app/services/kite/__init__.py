"""Kite Connect compatibility (DESIGN.md "Kite Connect compatibility"): the translation
between Zerodha's Kite Connect v3 API and our services. A protocol adapter, like a route: it
maps names, shapes and errors, then calls the same order, market-data and ticker services.
"""
