"""CLI progress: a live rich display in a (pseudo-)terminal that respects its width, plain lines without one."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from llmlab.runner.fanout import RunStats
from llmlab.runner.progress import Progress, progress_mode, summary_line
from llmlab.settings import repo_root

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CMD = [sys.executable, "-m", "llmlab.cli", "run", "quickstart", "--models", "sandbox/fast,sandbox/tiny",
       "--limit", "12", "--no-cache"]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "LLMLAB_SANDBOX_API_BASE")}
    env.update(LLMLAB_DB=str(tmp_path / "cli.duckdb"), TERM="xterm-256color", PYTHONUNBUFFERED="1")
    return env


def _run_in_pty(cmd: list[str], env: dict[str, str], cols: int, rows: int = 30, timeout_s: float = 240) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    return proc.wait(timeout=60), bytes(out)


@pytest.mark.slow
def test_cli_run_in_a_terminal_shows_a_live_bar_per_model_within_the_width(tmp_path):
    cols = 72
    code, raw = _run_in_pty(CMD, _env(tmp_path), cols)
    text = raw.decode("utf-8", "replace")
    assert code == 0, text[-2000:]
    # Redraws: rich moves the cursor up and rewrites the lines; each drawn line fits the terminal.
    assert "\x1b[1A" in text or "\x1b[2K" in text
    plain = ANSI.sub("", text)
    frames = [seg for line in plain.replace("\r\n", "\n").split("\n") for seg in line.split("\r")]
    drawn = [f for f in frames if f.strip()]
    fitted = [f for f in drawn if not f.startswith("store: ")]  # a file path is as long as it is
    assert fitted and max(len(f) for f in fitted) <= cols, max(fitted, key=len)
    assert any(f.lstrip().startswith("model") and "quality" in f for f in drawn)  # the summary table, fitted
    assert any(f.startswith("all models") and "24/24" in f for f in drawn)
    assert any("sandbox/fast" in f and "12/12" in f for f in drawn)
    assert any("sandbox/tiny" in f and "12/12" in f for f in drawn)
    assert any(re.match(r"llmlab: 24/24 calls \(100%\), 0 errors, 0 cached, \$[0-9.]+ spent", f) for f in drawn)
    # The "screenshot": the raw terminal transcript (cat it in a terminal) and the final frame as text.
    reports = repo_root() / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "cli_progress.ansi").write_bytes(raw)
    last_bar = max(i for i, f in enumerate(drawn) if f.startswith("all models"))
    (reports / "cli_progress.txt").write_text("$ " + " ".join(["llmlab", *CMD[3:]]) + f"   # {cols} columns\n"
                                              + "\n".join(drawn[last_bar:]) + "\n")


@pytest.mark.slow
def test_cli_run_without_a_terminal_writes_plain_progress_lines(tmp_path):
    env = _env(tmp_path)
    env["LLMLAB_PROGRESS_INTERVAL_S"] = "0"
    proc = subprocess.run(CMD, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    err = proc.stderr
    assert "\r" not in err and "\x1b" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("llmlab: ") and " calls (" in ln]
    assert lines, err
    assert all(re.match(r"llmlab: \d+/24 calls \(\d+%\), \d+ errors, \d+ cached, \$[0-9.]+ spent", ln) for ln in lines)
    assert lines[-1].startswith("llmlab: 24/24 calls (100%)")
    assert "run_id: " in proc.stdout


def test_progress_lines_form_is_throttled_and_closes_once():
    buf = io.StringIO()
    stats = RunStats(planned=10)
    prog = Progress(True, stream=buf, interval_s=3600)
    assert prog.mode == "lines"            # a StringIO is not a terminal
    for done in range(1, 10):
        stats.done = done
        prog.update(stats)
    assert buf.getvalue() == ""            # nothing before the first interval has passed
    stats.done = 10
    prog.update(stats, final=True)
    prog.update(stats, final=True)
    out = buf.getvalue().splitlines()
    assert len(out) == 1 and out[0].startswith("llmlab: 10/10 calls (100%)")


def test_progress_modes():
    assert progress_mode(False) == "off"
    assert progress_mode("lines") == "lines"
    assert progress_mode(True, io.StringIO()) == "lines"
    with pytest.raises(ValueError, match="progress='bar'"):
        progress_mode("bar")
    stats = RunStats(planned=4, done=1, error=1, cost_usd=0.5)
    assert summary_line(stats).startswith("llmlab: 1/4 calls (25%), 1 errors, 0 cached, $0.5000 spent")
