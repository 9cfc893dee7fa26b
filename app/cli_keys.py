"""``ticker-service keys …``: create, list, show-dev. Keys are files in TOKENS_DIR
(``app.services.access.keys``); nothing here needs the database or a running service."""

from __future__ import annotations

import argparse
import sys

from app.services.access.keys import (
    ALL_SCOPES,
    ApiKey,
    KeyFileError,
    create_key_file,
    digest,
    load_directory,
    parse_scopes,
    read_development_key,
)
from app.settings import Settings


def create(args: argparse.Namespace, settings: Settings) -> int:
    try:
        created = create_key_file(
            settings.auth.tokens_dir,
            account=args.account,
            scopes=parse_scopes(args.scopes),
            rate_limit=args.rate_limit,
        )
    except KeyFileError as exc:
        print(f"ticker-service: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"ticker-service: cannot write to {settings.auth.tokens_dir}: {exc}", file=sys.stderr)
        return 1
    key = created.api_key
    print(
        f"created {created.path} for account {key.account} (scopes "
        f"{','.join(sorted(key.scopes))}, fingerprint {key.fingerprint}); "
        "the key below is shown only once:",
        file=sys.stderr,
    )
    print(created.key)  # alone on stdout, so scripts can capture it
    return 0


def list_keys(_args: argparse.Namespace, settings: Settings) -> int:
    rows: list[tuple[ApiKey, str]] = []
    if settings.auth.api_key:
        rows.append((ApiKey("default", ALL_SCOPES, digest(settings.auth.api_key)), "API_KEY"))
    result = load_directory(settings.auth.tokens_dir)
    rows += [(loaded.key, loaded.key.source) for loaded in result.keys]
    print(f"{'ACCOUNT':<20} {'SCOPES':<18} {'RATE_LIMIT':<10} {'FINGERPRINT':<12}  SOURCE")
    for key, source in rows:
        rate = f"{key.rate_limit:g}" if key.rate_limit is not None else "default"
        scopes = ",".join(sorted(key.scopes))
        print(f"{key.account:<20} {scopes:<18} {rate:<10} {key.fingerprint:<12}  {source}")
    for name, problem in result.errors:
        print(f"skipped {name}: {problem}", file=sys.stderr)
    return 1 if result.errors else 0


def show_dev(_args: argparse.Namespace, settings: Settings) -> int:
    if settings.is_production:
        print(
            "ticker-service: keys show-dev is for development only (ENVIRONMENT=production "
            "keeps no development key; keys come from TOKENS_DIR or API_KEY)",
            file=sys.stderr,
        )
        return 2
    try:
        key = read_development_key(settings.auth.tokens_dir)
    except KeyFileError as exc:
        print(f"ticker-service: {exc}", file=sys.stderr)
        return 1
    print(key)  # alone on stdout: export KEY=$(ticker-service keys show-dev)
    return 0
