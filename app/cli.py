"""``ticker-service``: serve, migrate, keys, instruments."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from app.store.claims import FileClaim


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


def _configure_command_logging(settings: Settings) -> None:
    """Logging for the one-shot commands (all but ``serve``): their printed lines are the
    report, so INFO records (Alembic's "Running upgrade …", the importer's own summary) would
    only interleave log lines with it. Warnings and errors still show (e.g. PostgreSQL
    retries); ``LOG_LEVEL=DEBUG`` shows everything."""
    from app.logs import configure_logging

    configure_logging(settings.log)
    root = logging.getLogger()
    if root.level > logging.DEBUG:
        root.setLevel(max(root.level, logging.WARNING))


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen now, before anything starts: a busy port then stops a second instance
    before it runs migrations or opens the first one's files. ``listen`` at once, since
    SO_REUSEADDR lets two sockets bind one address as long as neither listens."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _claim_data(settings: Settings) -> FileClaim | None:
    """What a second instance must not share with a running one: the SQLite journal
    (``ROLE=all`` locks it, for the life of the process) and the embedded Redis."""
    from app.store.embedded_redis import EmbeddedRedis
    from app.wiring import claim_journal_file

    claim = claim_journal_file(settings)
    if not settings.redis.url:
        try:
            EmbeddedRedis.check_free(settings.db.data_dir)
        except BaseException:
            if claim is not None:
                claim.release()
            raise
    return claim


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.httpprotocol import HttpProtocol
    from app.logs import configure_logging
    from app.main import create_app
    from app.services.trading_day.calendar import CalendarError, TradingCalendar
    from app.store.claims import JournalClaimed
    from app.store.embedded_redis import EmbeddedRedisBusy
    from app.wsprotocol import ws_implementation

    for name, value in (
        ("ROLE", args.role),
        ("SHARD_ID", args.shard_id),
        ("MATCHER_SHARDS", args.shards),
    ):
        if value is not None:
            os.environ[name] = str(value)
    settings = _settings_or_exit()
    try:  # a bad calendar file: one line, before anything starts
        TradingCalendar.load(settings.orders.trading_calendar)
    except CalendarError as exc:
        print(f"ticker-service: {exc}", file=sys.stderr)
        return 2
    host = args.host or settings.host
    port = args.port or settings.port
    # Both checks before logging (LOG_DIR) or anything else touches a file.
    try:
        listener = _listen(host, port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(
            f"ticker-service: cannot listen on {host}:{port}: {reason} "
            "(another ticker-service? set PORT or --port)",
            file=sys.stderr,
        )
        return 1
    try:
        claim = _claim_data(settings)
    except (JournalClaimed, EmbeddedRedisBusy) as exc:
        listener.close()
        print(f"ticker-service: {exc}", file=sys.stderr)
        return 1
    configure_logging(settings.log)
    print(f"ticker-service listening on http://{host}:{port}", flush=True)
    config = uvicorn.Config(
        create_app(settings, journal_claim=claim),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds),
        http=HttpProtocol,
        ws=ws_implementation(),
        ws_ping_interval=None,
        # A WebSocket message is bounded like a request body: past it, close 1009 before
        # buffering more (uvicorn's default would hold up to 16 MiB per connection).
        ws_max_size=settings.max_body_bytes,
    )
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: a second Ctrl-C
        server.run(sockets=[listener])
    return 0 if server.started else 3  # uvicorn's own exit code for a failed start-up


def _migrate(_args: argparse.Namespace) -> int:
    from app.store.migrate import current_revision
    from app.wiring import open_database

    settings = _settings_or_exit()
    _configure_command_logging(settings)

    async def run() -> str | None:
        database = await open_database(settings, startup_timeout=10)
        try:
            return await current_revision(database)
        finally:
            await database.dispose()

    revision = asyncio.run(run())
    print(f"database at revision {revision}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from app import cli_keys

    settings = _settings_or_exit(production_checks=False)  # keys need no database
    commands = {
        "create": cli_keys.create,
        "list": cli_keys.list_keys,
        "show-dev": cli_keys.show_dev,
    }
    return commands[args.keys_command](args, settings)


def _instruments_import(args: argparse.Namespace) -> int:
    from app.cli_progress import import_progress
    from app.errors import ImportFileInvalid
    from app.services.instruments.importer import ImportReport, InstrumentImporter
    from app.store.instruments import InstrumentStore
    from app.wiring import open_database

    settings = _settings_or_exit(production_checks=False)  # needs only the database
    _configure_command_logging(settings)
    progress = import_progress(sys.stdout, args.file.name)

    async def run() -> ImportReport:
        database = await open_database(settings, startup_timeout=10)
        try:
            importer = InstrumentImporter(store=InstrumentStore(database))
            return await importer.import_csv(
                args.file, delist_missing=args.delist_missing, progress=progress
            )
        finally:
            await database.dispose()

    try:
        with progress:
            report = asyncio.run(run())
    except ImportFileInvalid as exc:
        print(f"ticker-service: {exc.message}", file=sys.stderr)
        return 2
    for rejected in report.rejected:
        print(f"line {rejected.line}: skipped: {rejected.reason}", file=sys.stderr)
    seconds = max(report.duration_seconds, 1e-9)
    print(f"imported {report.summary()} in {seconds:.1f} s ({report.rows / seconds:,.0f} rows/s)")
    print("a running service loads it at its next refresh (or POST /admin/instrument-refresh)")
    return 1 if report.rejected else 0


#: The example ending each command's ``--help`` (tests/test_cli.py checks that every command
#: has one), by the command's words after ``ticker-service``.
EXAMPLES = {
    "": "ticker-service serve --port 8000\n"
    "ticker-service keys create --account desk-b --scopes read,trade",
    "serve": "ticker-service serve --host 127.0.0.1 --port 8000\n"
    "ticker-service serve --role matcher --shards 2 --shard-id 0 --port 8101",
    "migrate": "DATABASE_URL=postgresql://ticker@db.internal/ticker ticker-service migrate",
    "keys": "ticker-service keys list",
    "keys create": "export KEY2=$(ticker-service keys create --account desk-b --scopes read,trade)",
    "keys list": "ticker-service keys list",
    "keys show-dev": "export KEY=$(ticker-service keys show-dev)",
    "instruments": "ticker-service instruments import app/data/instruments.csv",
    "instruments import": "ticker-service instruments import app/data/instruments.csv\n"
    "curl -s --compressed https://api.kite.trade/instruments -o kite.csv\n"
    "ticker-service instruments import kite.csv --delist-missing",
}


def _add_examples(parser: argparse.ArgumentParser, words: str = "") -> None:
    parser.epilog = "example:\n  " + EXAMPLES[words].replace("\n", "\n  ")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help for choice in action._choices_actions}
            for name, child in action.choices.items():
                child.description = child.description or helps.get(name)
                _add_examples(child, f"{words} {name}".strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ticker-service", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP/WebSocket service")
    serve.add_argument("--host", default=None, help="overrides HOST")
    serve.add_argument("--port", type=int, default=None, help="overrides PORT")
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
    create.set_defaults(func=_keys)
    listing = key_commands.add_parser("list", help="accounts, scopes and fingerprints (no keys)")
    listing.set_defaults(func=_keys)
    show_dev = key_commands.add_parser(
        "show-dev", help="print the development key again (development only)"
    )
    show_dev.set_defaults(func=_keys)
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
    _add_examples(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
