"""API key files: one JSON file per key in the tokens folder.

    {"account": "desk-a", "scopes": ["read", "trade"], "key_sha256": "<hex>", "rate_limit": 50}

``key`` (the plain key) may stand instead of ``key_sha256``; ``rate_limit`` (requests per
second) and ``burst`` are optional, and so is ``cash`` (the account's cash for the Kite
Connect margins, overriding ``KITE_CASH``). Only ``*.json`` files count; dotfiles and
dot-folders are ignored, because a Kubernetes secret mount keeps its real files under
``..data/`` (symlinks, which are followed) and editors leave dotfiles behind. Nothing here
ever puts a key, or a file's contents, into an error message.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any


class Scope(StrEnum):
    READ = "read"
    TRADE = "trade"
    ADMIN = "admin"


ALL_SCOPES = frozenset(Scope)
KEY_PREFIX = "tks_"
MIN_KEY_LENGTH = 16
DEVELOPMENT_ACCOUNT = "development"

_ACCOUNT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_MAX_FILE_BYTES = 64 * 1024


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def fingerprint(key_digest: str) -> str:
    return key_digest[:12]


@dataclass(frozen=True, slots=True)
class ApiKey:
    account: str
    scopes: frozenset[Scope]
    key_sha256: str
    rate_limit: float | None = None
    burst: int | None = None
    source: str = ""  # "API_KEY" or the key file's name, for logs and `keys list`
    cash: float | None = None  # Kite Connect margins' cash for the account (else KITE_CASH)
    max_position: Decimal | None = None  # the account's RISK_MAX_POSITION, if it differs

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_sha256)


class KeyFileError(ValueError):
    """A key file that cannot be used; the message names the problem, never the contents."""


@dataclass(frozen=True, slots=True)
class LoadedKey:
    key: ApiKey
    plain: str | None  # the plain key when the file held one (to register as a log secret)


def validate_account(account: object) -> str:
    if not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise KeyFileError("account must be 1-64 of A-Z a-z 0-9 . _ @ - (starting alphanumeric)")
    return account


def parse_scopes(value: Any) -> frozenset[Scope]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value:
        raise KeyFileError("scopes must be a non-empty list of read, trade, admin")
    known = {scope.value for scope in Scope}
    unknown = sorted({str(s) for s in value if s not in known})
    if unknown:
        raise KeyFileError(f"unknown scope(s) {', '.join(unknown)}; known: read, trade, admin")
    return frozenset(Scope(s) for s in value)


def _positive(data: dict[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise KeyFileError(f"{name} must be a positive number")
    return float(value)


def parse_key_file(text: str, *, source: str) -> LoadedKey:
    try:
        data = json.loads(text)
    except ValueError as exc:
        # json's message gives a position only, never the text.
        raise KeyFileError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise KeyFileError("expected a JSON object")
    account = validate_account(data.get("account"))
    scopes = parse_scopes(data.get("scopes"))
    plain, hashed = data.get("key"), data.get("key_sha256")
    if (plain is None) == (hashed is None):
        raise KeyFileError("exactly one of key or key_sha256 is required")
    if plain is not None:
        if not isinstance(plain, str) or len(plain) < MIN_KEY_LENGTH:
            raise KeyFileError(f"key must be a string of at least {MIN_KEY_LENGTH} characters")
        key_sha256 = digest(plain)
    else:
        if not isinstance(hashed, str) or not _HEX_DIGEST.fullmatch(hashed.lower()):
            raise KeyFileError("key_sha256 must be 64 hex digits (SHA-256 of the key)")
        key_sha256 = hashed.lower()
    rate = _positive(data, "rate_limit")
    burst = _positive(data, "burst")
    if burst is not None and burst != int(burst):
        raise KeyFileError("burst must be a whole number")
    max_position = _positive(data, "max_position")
    key = ApiKey(
        account,
        scopes,
        key_sha256,
        rate,
        int(burst) if burst else None,
        source=source,
        cash=_positive(data, "cash"),
        max_position=None if max_position is None else Decimal(str(data["max_position"])),
    )
    return LoadedKey(key, plain)


def key_file_paths(directory: Path) -> list[Path]:
    """The key files, sorted by name: ``*.json``, not hidden, regular files after symlinks."""
    try:
        entries = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    paths = []
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.endswith(".json"):
            continue
        with contextlib.suppress(OSError):
            if entry.is_file(follow_symlinks=True):
                paths.append(Path(entry.path))
    return sorted(paths, key=lambda p: p.name)


Snapshot = frozenset[tuple[str, int, int, int]]


def snapshot(directory: Path) -> Snapshot:
    """What changes when a key file is added, edited, replaced or removed.

    Follows symlinks, so the atomic ``..data`` swap of a Kubernetes secret update shows up as
    new inodes behind the same names.
    """
    items = set()
    for path in key_file_paths(directory):
        try:
            st = path.stat()
        except OSError:
            continue
        items.add((path.name, st.st_mtime_ns, st.st_size, st.st_ino))
    return frozenset(items)


@dataclass(frozen=True, slots=True)
class LoadResult:
    keys: list[LoadedKey]
    errors: list[tuple[str, str]]  # (file name, problem)


def load_directory(directory: Path) -> LoadResult:
    keys: list[LoadedKey] = []
    errors: list[tuple[str, str]] = []
    for path in key_file_paths(directory):
        try:
            if path.stat().st_size > _MAX_FILE_BYTES:
                raise KeyFileError(f"larger than {_MAX_FILE_BYTES} bytes")
            text = path.read_text(encoding="utf-8")
            keys.append(parse_key_file(text, source=path.name))
        except KeyFileError as exc:
            errors.append((path.name, str(exc)))
        except (OSError, UnicodeDecodeError) as exc:
            errors.append((path.name, f"unreadable ({type(exc).__name__})"))
    return LoadResult(keys, errors)


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CreatedKey:
    key: str  # the plain key: show it once, store it nowhere
    api_key: ApiKey
    path: Path


def create_key_file(
    directory: Path,
    *,
    account: str,
    scopes: frozenset[Scope],
    rate_limit: float | None = None,
    name: str | None = None,
    keep_plain: bool = False,
) -> CreatedKey:
    """Write a new key file (mode 0600) holding the key's digest, or with ``keep_plain`` the
    key itself (the development key, so that ``keys show-dev`` can print it again); return
    the key."""
    validate_account(account)
    if rate_limit is not None and not rate_limit > 0:
        raise KeyFileError("rate limit must be a positive number")
    key = generate_key()
    key_sha256 = digest(key)
    body: dict[str, Any] = {
        "account": account,
        "scopes": sorted(scope.value for scope in scopes),
    }
    body.update({"key": key} if keep_plain else {"key_sha256": key_sha256})
    if rate_limit is not None:
        body["rate_limit"] = rate_limit
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"{name or f'{account}-{fingerprint(key_sha256)[:8]}'}.json"
    # Written under a dotfile name (ignored by the loader), then renamed into place, so the
    # watcher never reads half a file.
    temporary = directory / f".{path.name}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(body, indent=2) + "\n")
        if path.exists():
            raise KeyFileError(f"{path.name} already exists")
        temporary.rename(path)
    finally:
        temporary.unlink(missing_ok=True)
    api_key = ApiKey(account, frozenset(scopes), key_sha256, rate_limit, source=path.name)
    return CreatedKey(key, api_key, path)


def development_key_path(directory: Path) -> Path:
    return directory / f"{DEVELOPMENT_ACCOUNT}.json"


def read_development_key(directory: Path) -> str:
    """The development key kept in ``TOKENS_DIR/development.json``; ``KeyFileError`` saying
    what to do when there is none to print."""
    path = development_key_path(directory)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyFileError(
            f"no development key in {path}: the service creates one on its first start "
            "in development when no key is configured (make run)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {path} ({type(exc).__name__})") from None
    try:
        loaded = parse_key_file(text, source=path.name)
    except KeyFileError as exc:
        raise KeyFileError(f"{path}: {exc}") from None
    if loaded.plain is None:
        # Files written before the development key was kept hold only its digest.
        raise KeyFileError(
            f"{path} holds only the key's SHA-256, so the key cannot be shown again; "
            "delete the file and restart the service to get a new development key"
        )
    return loaded.plain
