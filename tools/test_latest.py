"""`make test-latest`: the LiteLLM-facing tests against the newest LiteLLM that pyproject.toml allows.

Builds (or refreshes) a separate virtual environment from the lock, upgrades LiteLLM alone to the newest release in
the range pyproject.toml declares (its dependencies only where that release needs newer ones), tries that release's
``proxy`` extra (some releases pin a ``litellm-proxy-extras`` that was never published: then the proxy tests are
skipped and this script says so in one line), and runs the given pytest arguments there.

Usage: python tools/test_latest.py --venv .venv-latest --lock requirements.lock -- tests/test_sandbox.py ...
Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def litellm_range() -> str:
    """The LiteLLM requirement in pyproject.toml's dependencies, e.g. ``litellm>=1.106,<1.110``."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dep in deps:
        if re.match(r"litellm\b", dep) and not dep.startswith("litellm-"):
            return dep.replace(" ", "")
    raise SystemExit("test-latest: pyproject.toml declares no litellm dependency")


def pip(venv: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(venv / "bin" / "python"), "-m", "pip", "-qq", *args]
    return subprocess.run(cmd, check=check, text=True, capture_output=not check)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--venv", default=".venv-latest")
    ap.add_argument("--lock", default="requirements.lock")
    ap.add_argument("pytest_args", nargs="*")
    args = ap.parse_args()
    venv = ROOT / args.venv
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip(venv, "install", "-r", str(ROOT / args.lock))
    spec = litellm_range()
    pip(venv, "install", "--upgrade", "--upgrade-strategy", "eager", spec)  # its dependencies newest too, as a fresh install gets
    pip(venv, "install", "--no-deps", "-e", str(ROOT))
    version = subprocess.run([str(venv / "bin" / "python"), "-c",
                              "import importlib.metadata as m; print(m.version('litellm'))"],
                             check=True, text=True, capture_output=True).stdout.strip()
    proxy = pip(venv, "install", f"litellm[proxy]=={version}", check=False)
    env = dict(os.environ)
    if proxy.returncode != 0:
        reason = (proxy.stderr or proxy.stdout or "").strip().splitlines()
        why = next((line for line in reason if "litellm-proxy" in line or "No matching" in line), "install failed")
        print(f"test-latest: litellm[proxy]=={version} does not install from the registry ({why.strip()[:160]}); "
              "the proxy tests are skipped for this release")
        env["LLMLAB_SKIP_PROXY"] = f"litellm[proxy]=={version} does not install"
    print(f"test-latest: LiteLLM {version} (newest allowed by {spec!r}), its dependencies upgraded as a fresh install "
          "would; everything else as locked")
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           *args.pytest_args], env=env, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
