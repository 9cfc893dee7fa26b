"""Order routing: request parsing, risk checks, the books, the journal and the results."""
