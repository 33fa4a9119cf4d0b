"""Every environment variable llmlab reads, and every default path, in one place.

=============================  ==============================================================================
``LLMLAB_DB``                  the DuckDB store file (default ``$XDG_DATA_HOME/llmlab/llmlab.duckdb``,
                               i.e. ``~/.local/share/llmlab/llmlab.duckdb``)
``LLMLAB_MODELS``              comma-separated default models (default: the four sandbox models)
``LLMLAB_MODELS_FILE``         a YAML models file (:func:`llmlab.load_models`) read before the first model is
                               resolved: OpenAI-compatible endpoints with their ``api_base``, key variable, price
``LLMLAB_SANDBOX_API_BASE``    the sandbox's API base (set by ``ensure_sandbox``; read by exported configs as
                               ``os.environ/LLMLAB_SANDBOX_API_BASE``)
``LLMLAB_SANDBOX_API_KEY``     the key exported configs send to the sandbox (any value works)
``LLMLAB_DATASETS_DIR``        where bundled prompt sets are read (default: the repository's ``datasets/``)
``LLMLAB_ROUTELLM_DIR``        RouteLLM's recorded results (default ``../shared/data/routellm``)
``LLMLAB_REPORTS_DIR``         where the demo writes its reports (default ``reports/``)
``LLMLAB_PROGRESS_INTERVAL_S``  seconds between progress lines when stderr is not a terminal (default 10)
``LLMLAB_ROUTING_POLICY``      the policy model file an exported routing plugin loads (default: the
                               ``llmlab_route_policy.json`` beside its ``llmlab_route.py``)
``LITELLM_LOCAL_MODEL_COST_MAP``  set to ``True`` by llmlab unless the user set it (LiteLLM's bundled price map,
                               no network at import)
=============================  ==============================================================================

Provider keys (``OPENAI_API_KEY``, ...) are read by LiteLLM at call time; llmlab checks only that they are set
and never stores, logs or exports a value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = [
    "DATASETS_DIR_ENV",
    "DB_ENV",
    "MODELS_ENV",
    "MODELS_FILE_ENV",
    "PROGRESS_INTERVAL_ENV",
    "REPORTS_DIR_ENV",
    "ROUTELLM_DIR_ENV",
    "ROUTING_POLICY_ENV",
    "SANDBOX_API_BASE_ENV",
    "SANDBOX_API_KEY_ENV",
    "datasets_dir",
    "default_store_path",
    "repo_root",
    "routellm_dir",
]

DB_ENV = "LLMLAB_DB"
MODELS_ENV = "LLMLAB_MODELS"
MODELS_FILE_ENV = "LLMLAB_MODELS_FILE"
SANDBOX_API_BASE_ENV = "LLMLAB_SANDBOX_API_BASE"
SANDBOX_API_KEY_ENV = "LLMLAB_SANDBOX_API_KEY"
DATASETS_DIR_ENV = "LLMLAB_DATASETS_DIR"
ROUTELLM_DIR_ENV = "LLMLAB_ROUTELLM_DIR"
REPORTS_DIR_ENV = "LLMLAB_REPORTS_DIR"
PROGRESS_INTERVAL_ENV = "LLMLAB_PROGRESS_INTERVAL_S"
ROUTING_POLICY_ENV = "LLMLAB_ROUTING_POLICY"


def default_store_path() -> Path:
    """The store path: ``LLMLAB_DB``, else ``$XDG_DATA_HOME/llmlab/llmlab.duckdb`` (``~/.local/share/...``)."""
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "llmlab" / "llmlab.duckdb"


def repo_root() -> Path:
    """The repository (or install prefix) root: the folder holding the ``llmlab`` package."""
    return Path(__file__).resolve().parent.parent


def routellm_dir() -> Path:
    """RouteLLM's recorded results: ``$LLMLAB_ROUTELLM_DIR``, else ``../shared/data/routellm`` beside the repo."""
    override = os.environ.get(ROUTELLM_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return repo_root().parent / "shared" / "data" / "routellm"


def datasets_dir() -> Path:
    """The directory of bundled prompt sets: ``$LLMLAB_DATASETS_DIR`` when set, else the repository's
    ``datasets/`` directory (a source checkout or an editable install), else ``<prefix>/share/llmlab/datasets``
    (a wheel install)."""
    override = os.environ.get(DATASETS_DIR_ENV)
    if override:
        return Path(override).expanduser()
    repo = Path(__file__).resolve().parent.parent / "datasets"
    if repo.is_dir():
        return repo
    return Path(sys.prefix) / "share" / "llmlab" / "datasets"
