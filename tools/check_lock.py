"""Check that this environment holds exactly the packages of the lock (run by `make install` after installing).

Compares every ``name==version`` line of ``requirements.lock`` whose environment marker applies here with the
installed distributions (``importlib.metadata``); llmlab itself and pip's own tools are ignored. Prints what
differs and exits 1, or prints one line and exits 0.

Usage: python tools/check_lock.py [requirements.lock]
"""

from __future__ import annotations

import importlib.metadata as md
import sys
from pathlib import Path

from packaging.markers import Marker
from packaging.utils import canonicalize_name

IGNORED = {"llmlab", "pip", "setuptools", "wheel"}


def locked(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        req, _, marker = line.partition(";")
        if marker.strip() and not Marker(marker.strip()).evaluate():
            continue
        name, _, version = req.strip().partition("==")
        out[canonicalize_name(name.split("[", 1)[0])] = version.strip()
    return out


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions() if d.metadata["Name"]}


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "requirements.lock")
    want, have = locked(path), installed()
    missing = {n: v for n, v in want.items() if n not in have}
    wrong = {n: (v, have[n]) for n, v in want.items() if n in have and have[n] != v}
    extra = {n: v for n, v in have.items() if n not in want and n not in IGNORED}
    for n, v in sorted(missing.items()):
        print(f"check-lock: {n}=={v} is locked but not installed")
    for n, (v, got) in sorted(wrong.items()):
        print(f"check-lock: {n} is {got}, the lock says {v}")
    for n, v in sorted(extra.items()):
        print(f"check-lock: {n}=={v} is installed but not in the lock")
    if missing or wrong or extra:
        print("check-lock: this environment is not the lock's (an older .venv? `make clean`, then run make again)")
        return 1
    print(f"check-lock: the environment equals {path} ({len(want)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
