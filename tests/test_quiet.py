"""Quiet by default: LiteLLM's own log output goes into llmlab's log, shown only with set_log_level / --verbose."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent('''
    import json, sys
    import llmlab
    from llmlab._litellm import litellm
    from llmlab.logs import litellm_messages
    if sys.argv[1] == "verbose":
        llmlab.set_log_level("DEBUG")
    ll = litellm()
    # A Router with custom prices for a model LiteLLM does not know: LiteLLM logs a WARNING for each deployment.
    ll.Router(model_list=[{"model_name": "g", "litellm_params": {
        "model": "openai/llmlab-quiet-test", "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-quiet-canary-0123456789",
        "input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}}])
    print(json.dumps(litellm_messages("WARNING")))
''')


@pytest.mark.parametrize("mode", ["quiet", "verbose"])
def test_litellm_warnings_are_captured_and_shown_only_when_asked(mode, tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    captured = json.loads(proc.stdout.strip().splitlines()[-1])
    assert any("llmlab-quiet-test" in m["message"] and m["logger"] == "LiteLLM" for m in captured)
    if mode == "quiet":
        assert "LiteLLM:WARNING" not in proc.stderr and "llmlab-quiet-test" not in proc.stderr
    else:
        assert "llmlab: llmlab.litellm: LiteLLM: " in proc.stderr and "llmlab-quiet-test" in proc.stderr
    assert "sk-quiet-canary" not in proc.stderr and "sk-quiet-canary" not in proc.stdout


def test_set_log_level_refuses_an_unknown_level():
    from llmlab.logs import set_log_level

    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        set_log_level("LOUD")


ROUTER_SCRIPT = textwrap.dedent('''
    import sys
    import llmlab
    from llmlab.sandbox import ensure_sandbox
    ensure_sandbox()
    res = llmlab.run(["What is 2 + 2?", "Name a prime above 100."], ["sandbox/fast", "sandbox/tiny"],
                     progress=False)
    table = llmlab.routing_table(res.results.assign(quality=1.0), min_n=1)
    path = llmlab.export_litellm_config(table, "routing.yaml")
    routed = llmlab.run(["What is 3 + 3?"], router=str(path), progress=False, cache=False)
    print("routed", len(routed.results), routed.results["status"].tolist())
''')


def test_no_never_awaited_coroutine_warning_at_exit_after_the_router(tmp_path):
    """The first wave printed ``RuntimeWarning: coroutine ... was never awaited`` at exit after a Router was
    used; a run through an exported config's Router, then interpreter exit, prints no such warning."""
    import os

    env = {**os.environ, "LLMLAB_DB": str(tmp_path / "q.duckdb"), "PYTHONWARNINGS": "default"}
    env.pop("LLMLAB_SANDBOX_API_BASE", None)
    proc = subprocess.run([sys.executable, "-c", ROUTER_SCRIPT], capture_output=True, text=True, timeout=240,
                          cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "routed 1 ['ok']" in proc.stdout
    assert "never awaited" not in proc.stderr and "Task was destroyed" not in proc.stderr, proc.stderr[-2000:]
