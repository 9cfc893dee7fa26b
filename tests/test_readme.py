"""The README's API and CLI examples, run as they stand.

Which fenced blocks run is explicit: the line before the fence is an HTML comment,
``<!-- readme-test: run -->`` or ``<!-- readme-test: skip: <why> -->``. Every shell block, and
every block with a ``curl`` or ``ticker-service`` command line, must carry one, and the number
of blocks that run may not fall below ``MIN_RUN_BLOCKS`` (``TestMarkers``).

The blocks marked ``run`` form one bash script, in the README's order (later blocks use the
variables and background jobs of earlier ones), run from a folder laid out like the
repository (``.venv`` and ``app`` linked to this one's; ``data/`` and ``tokens/`` its own)
against ``ticker-service serve`` started as ``make run`` does — SQLite and the embedded Redis
in ``data/``, keys in ``tokens/`` — with ``WEBHOOK_ALLOW_LOOPBACK=true``, as First trade says.
Only the ports change: the README's 8000 (the service) and 8001 (the webhook receiver) become
free ones. A ``.curlrc`` with ``fail-with-body`` makes an HTTP error fail its block, as any
non-zero exit does (``set -euo pipefail``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import secrets
from tests.support.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MIN_RUN_BLOCKS = 5  # as many as the README has; raise it with every new example
SHELLS = frozenset({"sh", "bash", "shell", "console"})
README_PORTS = {"8000": "service", "8001": "receiver"}

_MARKER = re.compile(r"<!-- readme-test: (run|skip)(?:: (.+?))? -->")
_FENCE = re.compile(r"^(\s*)```(\S*)\s*$")
_COMMAND = re.compile(r"^\s*(?:[A-Z_]+=\S+\s+)*(?:curl|ticker-service)\s", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    line: int  # the opening fence's, 1-based
    info: str
    text: str
    marker: str | None  # "run", "skip", or None when unmarked
    reason: str | None


def readme_blocks(markdown: str) -> list[Block]:
    lines = markdown.splitlines()
    found: list[Block] = []
    at = 0
    while at < len(lines):
        fence = _FENCE.match(lines[at])
        if fence is None:
            at += 1
            continue
        indent, info = fence.groups()
        end = at + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        body = "\n".join(line.removeprefix(indent) for line in lines[at + 1 : end])
        marker = _MARKER.fullmatch(lines[at - 1].strip()) if at else None
        found.append(
            Block(
                at + 1,
                info,
                body,
                marker.group(1) if marker else None,
                marker.group(2) if marker else None,
            )
        )
        at = end + 1
    return found


def blocks_to_run() -> list[Block]:
    return [block for block in readme_blocks(README.read_text()) if block.marker == "run"]


class TestMarkers:
    def test_every_command_block_is_marked_run_or_skip_with_a_reason(self) -> None:
        text = README.read_text()
        blocks = readme_blocks(text)
        for block in blocks:
            if block.info in SHELLS or _COMMAND.search(block.text):
                assert block.marker is not None, f"README.md:{block.line}: unmarked example"
            if block.marker == "skip":
                assert block.reason, f"README.md:{block.line}: a skip says why"
            if block.marker == "run":
                assert block.info in SHELLS, f"README.md:{block.line}: only shell blocks run"
        # A marker that is not right above a fence marks nothing.
        assert len(_MARKER.findall(text)) == sum(1 for b in blocks if b.marker)

    def test_the_blocks_that_run_do_not_silently_drop(self) -> None:
        run = blocks_to_run()
        assert len(run) >= MIN_RUN_BLOCKS, [block.line for block in run]
        assert any("/ws/ticker" in block.text for block in run)
        assert any("keys show-dev" in block.text for block in run)

    def test_the_parser_finds_indented_blocks_and_markers(self) -> None:
        markdown = "- item\n\n  <!-- readme-test: run -->\n  ```sh\n  echo hi\n  ```\n"
        [block] = readme_blocks(markdown)
        assert (block.line, block.info, block.text, block.marker) == (4, "sh", "echo hi", "run")


def script(blocks: list[Block], ports: dict[str, int]) -> str:
    """One bash script: each block, its ports substituted, after a line noting which runs."""
    parts = ["set -euo pipefail"]
    for block in blocks:
        text = block.text
        for readme_port, role in README_PORTS.items():
            for host in ("127.0.0.1", "localhost"):
                text = text.replace(f"{host}:{readme_port}", f"127.0.0.1:{ports[role]}")
        parts += [f'echo {block.line} > "$README_TEST_BLOCK"', text]
    parts.append('echo done > "$README_TEST_BLOCK"')
    return "\n".join(parts) + "\n"


@dataclass
class Service:
    url: str
    log: Path


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder laid out like the repository, where the README's commands are typed."""
    folder = tmp_path / "checkout"
    (folder / "data").mkdir(parents=True)
    (folder / ".venv").symlink_to(ROOT / ".venv")
    (folder / "app").symlink_to(ROOT / "app")
    return folder


@pytest.fixture
def service(tmp_path: Path, checkout: Path) -> Iterator[Service]:
    """``make run``'s service with WEBHOOK_ALLOW_LOOPBACK=true, on a free port, its data and
    keys in the checkout. stdout (the development key) and the log go to separate files: only
    the log is scanned for secrets."""
    port = free_port()
    workdir = tmp_path / "service"
    workdir.mkdir()
    log = workdir / "service.log"
    secrets.watch(log)
    env = {
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")},
        "PYTHONPATH": str(ROOT),
        "DATA_DIR": str(checkout / "data"),
        "TOKENS_DIR": str(checkout / "tokens"),
        "WEBHOOK_ALLOW_LOOPBACK": "true",
        "LOG_FORMAT": "json",
    }
    with (workdir / "stdout.txt").open("wb") as out, log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
            env=env,
            cwd=workdir,
            stdout=out,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            try:
                if httpx.get(url + "/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        yield Service(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def remember_secrets(environment: Path) -> None:
    """The keys and webhook secret the README's commands made: none may reach a log."""
    if not environment.exists():
        return
    for line in environment.read_text().splitlines():
        name, _, value = line.partition("=")
        if name in ("KEY", "KEY2", "SECRET") and value:
            secrets.remember(value)


class TestExamples:
    def test_every_block_marked_run_succeeds(
        self, tmp_path: Path, checkout: Path, service: Service
    ) -> None:
        blocks = blocks_to_run()
        ports = {"service": int(service.url.rsplit(":", 1)[1]), "receiver": free_port()}
        (tmp_path / "curl").mkdir()
        (tmp_path / "curl" / ".curlrc").write_text("fail-with-body\n")
        progress = tmp_path / "block.txt"
        environment = tmp_path / "environment.txt"
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "CURL_HOME": str(tmp_path / "curl"),
            "DATA_DIR": str(checkout / "data"),
            "TOKENS_DIR": str(checkout / "tokens"),
            "README_TEST_BLOCK": str(progress),
        }
        body = f"trap 'env > \"{environment}\"' EXIT\n" + script(blocks, ports)
        process = subprocess.Popen(
            ["bash", "-c", body],
            cwd=checkout,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its background jobs share its process group
        )
        try:
            out, err = process.communicate(timeout=180)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        finally:
            with contextlib.suppress(ProcessLookupError):  # jobs a failed block left behind
                os.killpg(process.pid, signal.SIGKILL)
            remember_secrets(environment)
        last = progress.read_text().strip() if progress.exists() else "?"
        assert (process.returncode, last) == (0, "done"), (
            f"README.md block at line {last} failed (exit {process.returncode})\n"
            f"--- stdout ---\n{out[-3000:]}\n--- stderr ---\n{err[-3000:]}\n"
            f"--- service log ---\n{service.log.read_text()[-3000:]}"
        )
        # `wait` ends well whatever its jobs did: check what the watcher and receiver saw.
        watched = (checkout / "data" / "watch.log").read_text()
        assert '"type":"fill"' in watched.replace(" ", ""), watched
        assert re.search(r'"ltp":\s*"1876"', watched), watched
        hooks = (checkout / "data" / "hooks.log").read_text().splitlines()[1:]  # "listening…"
        # The sell's messages in order; the self-trading buy's goes out in parallel, so the
        # receiver, which stops at the fill, may or may not have got it.
        assert [hook for hook in hooks if " buy " not in hook] == [
            "order.accepted sell open 0",
            "order.filled sell filled 5",
        ], hooks
        assert [hook for hook in hooks if " buy " in hook] in (
            [],
            ["order.accepted buy cancelled 0"],
        )
        assert '"reason":"SELF_TRADE_PREVENTION"' in out.replace(" ", ""), out


class TestMap:
    """The "How it works" map names modules and functions that exist, so it stays true."""

    def section(self) -> str:
        text = README.read_text()
        start = text.index("## How it works")
        return text[start : text.index("\n## ", start + 1)]

    def test_every_file_named_exists(self) -> None:
        files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app").rglob("*.py")}
        named = set(re.findall(r"`([\w/]+\.py)`", self.section()))
        assert named
        missing = {n for n in named if not any(f.endswith(n) for f in files)}
        assert not missing, f"the map names files that are not in app/: {sorted(missing)}"

    def test_every_function_and_class_named_is_defined(self) -> None:
        paths = list((ROOT / "app").rglob("*.py"))
        source = "\n".join(p.read_text() for p in paths)
        defined = set(re.findall(r"^\s*(?:async def|def|class)\s+(\w+)", source, re.M))
        defined |= set(re.findall(r"^(\w+)\s*[:=]", source, re.M))  # module-level names
        defined |= {p.stem for p in paths}  # ``module.function``
        named = set()
        for token in re.findall(r"`([\w.]+)`", self.section()):
            if not token.endswith(".py"):
                named.update(token.split("."))
        assert len(named) > 20
        missing = sorted(named - defined - {"app"})
        assert not missing, f"the map names what app/ does not define: {missing}"
