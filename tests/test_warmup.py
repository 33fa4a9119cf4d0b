"""What ``%load_ext llmlab``'s warm-up prepares for the first ``%%llm`` cell (llmlab.warmup), and that it is safe:
the store it opens stays open to other processes, it starts no server, and ``LLMLAB_WARMUP=0`` turns it off.

Each test runs a fresh interpreter (the warm-up runs once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PRELUDE = """
import json, os, subprocess, sys, threading
from IPython.core.interactiveshell import InteractiveShell
sh = InteractiveShell.instance()
"""

#: a second process opening the store (DuckDB lets one process hold a file): it reads the migration ledger
OTHER_PROCESS = """
def other_process_reads(path):
    code = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]); "
            "print(con.execute('SELECT max(version) FROM schema_migrations').fetchone()[0])")
    out = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, timeout=60)
    return out.returncode == 0 and int(out.stdout.strip()) > 0
"""


def _run(code: str, env: dict[str, str]) -> dict:
    # a fresh kernel's environment: no sandbox address a test of this process (the session sandbox) has exported
    base = {k: v for k, v in os.environ.items() if k != "LLMLAB_SANDBOX_API_BASE"}
    out = subprocess.run([sys.executable, "-c", PRELUDE + OTHER_PROCESS + code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT, env={**base, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_warm_up_prepares_the_configured_store_the_imports_and_litellms_first_call(tmp_path):
    configured, default = tmp_path / "configured.duckdb", tmp_path / "default.duckdb"
    info = _run(f"""
sh.config.LLMMagics.store_path = {str(configured)!r}  # the magic's store, as configured when the extension loads
sh.run_line_magic('load_ext', 'llmlab')
import llmlab.warmup, llmlab.store
from llmlab.sandbox import control
thread = [t for t in threading.enumerate() if t.name == 'llmlab-warmup'][0]
thread.join(240)
path = {str(configured)!r}
state = {{
    "prepared": list(llmlab.warmup.prepared()),
    "migrated": str(os.path.realpath(path)) in llmlab.store._migrated,
    "default_store_file": os.path.exists(os.environ['LLMLAB_DB']),
    "other_process_reads": other_process_reads(path),     # the warm-up holds no connection
    "sandbox_started": control._shared is not None or 'LLMLAB_SANDBOX_API_BASE' in os.environ,
    "imported": [m for m in ('pandas', 'duckdb', 'aiohttp', 'litellm', 'openai.resources', 'llmlab.runner.handle',
                             'llmlab.views.display', 'litellm.litellm_core_utils.default_encoding')
                 if m in sys.modules],
}}
before = set(sys.modules)
sh.run_cell_magic('llm', 'sandbox/fast sandbox/tiny --no-cache', 'Say hello.')   # openai and anthropic paths
state["first_cell_imported"] = sorted(m for m in set(sys.modules) - before
                                      if m.split('.')[0] in ('litellm', 'openai', 'tiktoken', 'anthropic'))
state["rows"] = int(llmlab.store.Store(path).sql("SELECT count(*) AS n FROM calls")["n"][0])
print(json.dumps(state))
""", {"LLMLAB_DB": str(default)})
    assert info["prepared"] == ["prompts", "store", "sandbox", "runner", "litellm", "first_call"]
    assert info["migrated"] and not info["default_store_file"]
    assert info["other_process_reads"]
    assert not info["sandbox_started"]  # a later ensure_sandbox(seed=...) still gets its arguments
    assert len(info["imported"]) == 8, info["imported"]
    assert info["first_cell_imported"] == []  # LiteLLM's first request found its lazy imports done
    assert info["rows"] == 2


def test_warm_up_skips_a_store_another_process_holds_and_prepares_the_rest(tmp_path):
    held = tmp_path / "held.duckdb"
    info = _run(f"""
holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                           "print('open', flush=True); time.sleep(120)", {str(held)!r}], stdout=subprocess.PIPE,
                          text=True)
assert holder.stdout.readline().strip() == 'open'
sh.run_line_magic('load_ext', 'llmlab')
import llmlab.warmup, llmlab.store
thread = [t for t in threading.enumerate() if t.name == 'llmlab-warmup'][0]
thread.join(240)
state = {{"prepared": list(llmlab.warmup.prepared()), "alive": thread.is_alive(),
          "held": str(os.path.realpath({str(held)!r})) in llmlab.store._migrated}}
holder.kill()
print(json.dumps(state))
""", {"LLMLAB_DB": str(held)})
    assert info == {"prepared": ["prompts", "sandbox", "runner", "litellm", "first_call"], "alive": False,
                    "held": False}


def test_llmlab_warmup_0_prepares_nothing(tmp_path):
    db = tmp_path / "never.duckdb"
    info = _run("""
sh.run_line_magic('load_ext', 'llmlab')
import llmlab.warmup
print(json.dumps({"threads": [t.name for t in threading.enumerate() if t.name == 'llmlab-warmup'],
                  "prepared": list(llmlab.warmup.prepared()), "store_file": os.path.exists(os.environ['LLMLAB_DB']),
                  "heavy": [m for m in ('litellm', 'pandas', 'duckdb', 'aiohttp') if m in sys.modules]}))
""", {"LLMLAB_DB": str(db), "LLMLAB_WARMUP": "0"})
    assert info == {"threads": [], "prepared": [], "store_file": False, "heavy": []}
