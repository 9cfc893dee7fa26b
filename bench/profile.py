"""Where a server's CPU goes, from a ``py-spy record --format raw`` file, grouped by module.

Each sample is charged to its innermost frame's module, folded to a readable group (our own
packages by sub-package, libraries by their top package, the interpreter's event loop as
``asyncio``); idle samples (the loop waiting in ``select``/``epoll``) are counted apart, so the
shares are of the CPU the process used.

    py-spy record --pid PID --format raw --rate 500 --duration 10 -o stacks.txt
    .venv/bin/python bench/profile.py stacks.txt [--top 25] [--per-request N]

``--per-request N``: N requests were served during the recording; each group is also shown
in microseconds per request.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# A leaf frame that is the loop or a thread waiting, not work.
_IDLE = ("select (", "poll (", "_run_once (asyncio", "wait (threading", "_worker (concurrent")


def group_of(file: str) -> str:
    """py-spy names files relative to their ``sys.path`` entry: ``app/services/orders/
    journal.py`` -> ``app.services.orders.journal`` (ours, by module); ``uvicorn/protocols/
    http/httptools_impl.py`` -> ``uvicorn`` (a library, by package); ``asyncio/runners.py``
    -> ``asyncio``; ``<frozen runpy>`` stays as it is."""
    path = file.replace("\\", "/")
    if "/site-packages/" in path:
        path = path.split("/site-packages/", 1)[1]
    if path.startswith("app/"):
        return path.removesuffix(".py").replace("/", ".")
    return path.split("/", 1)[0].removesuffix(".py")


def parse(path: Path) -> tuple[Counter[str], Counter[str], int, int]:
    """(samples by leaf group, samples by inclusive ``app`` function, busy, idle)."""
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    busy = idle = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")[1:]  # the first entry names the process
        if not frames:
            continue
        last = frames[-1]
        if any(marker in last for marker in _IDLE):
            idle += count
            continue
        busy += count
        match = _FRAME.match(last)
        leaf[group_of(match["file"]) if match else last] += count
        seen: set[str] = set()
        for frame in frames:
            match = _FRAME.match(frame)
            if match and group_of(match["file"]).startswith("app."):
                name = f"{group_of(match['file'])}.{match['function']}"
                if name not in seen:
                    seen.add(name)
                    inclusive[name] += count
    return leaf, inclusive, busy, idle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stacks", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--per-request", type=int, default=0, metavar="N")
    parser.add_argument("--rate", type=int, default=500, help="py-spy's --rate (samples/s)")
    args = parser.parse_args()
    leaf, inclusive, busy, idle = parse(args.stacks)
    total = busy + idle
    print(f"samples: {total}, busy {busy} ({100 * busy / max(total, 1):.0f}%), idle {idle}")

    def show(title: str, counts: Counter[str]) -> None:
        print(f"\n{title}")
        for name, count in counts.most_common(args.top):
            share = 100 * count / max(busy, 1)
            line = f"  {share:5.1f}%  {name}"
            if args.per_request:
                micros = count / args.rate / args.per_request * 1e6
                line += f"  ({micros:.0f} µs/request)"
            print(line)

    show("self time by module (share of busy samples)", leaf)
    show("inclusive time in our own functions", inclusive)


if __name__ == "__main__":
    main()
