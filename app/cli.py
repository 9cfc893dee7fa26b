"""``ticker-service``: serve, migrate, keys, instruments."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app.settings import ConfigError, Settings, load_settings


def _settings_or_exit(*, production_checks: bool = True) -> Settings:
    try:
        return load_settings() if production_checks else Settings()
    except ConfigError as exc:
        print(f"ticker-service: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except ValueError as exc:  # pydantic ValidationError: name the bad settings on one line
        errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
        names = ", ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors
        ) or str(exc)
        print(f"ticker-service: invalid configuration: {names}", file=sys.stderr)
        raise SystemExit(2) from None


#: uvicorn's sans-I/O implementation of the WebSocket protocol (the ``websockets`` library's
#: protocol without its legacy asyncio layers, which uvicorn 0.50 deprecated), extended with a
#: direct frame writer for tick fan-out (``app.wsprotocol``; BENCHMARKS.md, Ticker). Named, so
#: that the service, the tests' live server and the ticker bench all run the same one.
WS_IMPLEMENTATION = "app.wsprotocol:WebSocketProtocol"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import configure_logging
    from app.main import create_app

    for name, value in (
        ("ROLE", args.role),
        ("SHARD_ID", args.shard_id),
        ("MATCHER_SHARDS", args.shards),
    ):
        if value is not None:
            os.environ[name] = str(value)
    settings = _settings_or_exit()
    configure_logging(settings.log)
    host = args.host or settings.host
    port = args.port or settings.port
    print(f"ticker-service listening on http://{host}:{port}", flush=True)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        ws=WS_IMPLEMENTATION,
        ws_ping_interval=None,
        # A WebSocket message is bounded like a request body: past it, close 1009 before
        # buffering more (uvicorn's default would hold up to 16 MiB per connection).
        ws_max_size=settings.max_body_bytes,
    )
    return 0


def _migrate(_args: argparse.Namespace) -> int:
    from app.logs import configure_logging
    from app.store.migrate import current_revision
    from app.wiring import open_database

    settings = _settings_or_exit()
    configure_logging(settings.log)

    async def run() -> str | None:
        database = await open_database(settings, startup_timeout=10)
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    revision = asyncio.run(run())
    print(f"database at revision {revision}")
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from app.services.keys import KeyFileError, create_key_file, parse_scopes

    settings = _settings_or_exit(production_checks=False)
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


def _keys_list(_args: argparse.Namespace) -> int:
    from app.services.keys import ALL_SCOPES, ApiKey, digest, load_directory

    settings = _settings_or_exit(production_checks=False)
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


def _instruments_import(args: argparse.Namespace) -> int:
    from app.errors import ImportFileInvalid
    from app.logs import configure_logging
    from app.services.instrument_import import ImportReport, InstrumentImporter
    from app.store.instruments import InstrumentStore
    from app.wiring import open_database

    settings = _settings_or_exit(production_checks=False)  # needs only the database
    configure_logging(settings.log)

    async def run() -> ImportReport:
        database = await open_database(settings, startup_timeout=10)
        try:
            importer = InstrumentImporter(store=InstrumentStore(database))
            return await importer.import_csv(args.file, delist_missing=args.delist_missing)
        finally:
            await database.dispose()

    try:
        report = asyncio.run(run())
    except ImportFileInvalid as exc:
        print(f"ticker-service: {exc.message}", file=sys.stderr)
        return 2
    for rejected in report.rejected:
        print(f"line {rejected.line}: skipped: {rejected.reason}", file=sys.stderr)
    print(f"imported {report.summary()}")
    print("a running service loads it at its next refresh (or POST /admin/instrument-refresh)")
    return 1 if report.rejected else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticker-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP/WebSocket service")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument(
        "--role", choices=("all", "gateway", "matcher"), default=None, help="overrides ROLE"
    )
    serve.add_argument("--shard-id", type=int, default=None, help="overrides SHARD_ID")
    serve.add_argument("--shards", type=int, default=None, help="overrides MATCHER_SHARDS")
    serve.set_defaults(func=_serve)
    migrate = commands.add_parser("migrate", help="apply database migrations and exit")
    migrate.set_defaults(func=_migrate)
    keys = commands.add_parser("keys", help="API keys in TOKENS_DIR")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="write a new key file; print the key once")
    create.add_argument("--account", required=True)
    create.add_argument("--scopes", required=True, help="comma-separated: read,trade,admin")
    create.add_argument("--rate-limit", type=float, default=None, help="requests per second")
    create.set_defaults(func=_keys_create)
    listing = key_commands.add_parser("list", help="accounts, scopes and fingerprints (no keys)")
    listing.set_defaults(func=_keys_list)
    instruments = commands.add_parser("instruments", help="the instrument registry")
    instrument_commands = instruments.add_subparsers(dest="instruments_command", required=True)
    load = instrument_commands.add_parser(
        "import", help="upsert a Kite Connect instruments CSV; exit 1 if any row was skipped"
    )
    load.add_argument("file", type=Path, metavar="FILE.csv")
    load.add_argument(
        "--delist-missing", action="store_true", help="mark instruments absent from FILE delisted"
    )
    load.set_defaults(func=_instruments_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
