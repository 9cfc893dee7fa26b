"""The instrument registry: the instrument model, the cached snapshot, the registry
service that loads and refreshes it, and the importer of Kite's CSV dump."""
