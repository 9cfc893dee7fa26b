"""Who may do what: API keys (key files), authentication with scopes, and rate limits."""
