"""llmlab's exceptions: one root, a few subclasses.

::

    LLMLabError
    ├── PromptSetError (ValueError)      bad prompt-set input: file, line, column, variable named
    ├── ModelError (ValueError)          unknown model or alias, unusable model string
    │   └── MissingKeyError              the provider's API key variable is not set (its name, never a value)
    ├── StoreError                       the DuckDB store cannot be opened or written
    │   └── SchemaVersionError           the file was written by a newer llmlab: refused, never rewritten
    ├── BudgetError (ValueError)         the estimated cost of a run exceeds its budget
    ├── AnalysisError (ValueError)       a results frame lacks a column an analysis needs
    ├── RoutingError (ValueError)        no routing table can be derived from the given results
    └── SandboxError                     the local sandbox server failed to start or answer

A failed provider call is *not* an exception: it is a recorded row with ``status = 'error'``.
"""

from __future__ import annotations


class LLMLabError(Exception):
    """Root of every exception llmlab raises on purpose."""


class PromptSetError(LLMLabError, ValueError):
    """A prompt set could not be loaded or is invalid (the message names file, line, column or variable)."""


class ModelError(LLMLabError, ValueError):
    """A model string or alias cannot be resolved."""


class MissingKeyError(ModelError):
    """A provider's API key environment variable is not set. The message names the variable, never a value."""


class StoreError(LLMLabError):
    """The DuckDB store cannot be opened, migrated or written."""


class SchemaVersionError(StoreError):
    """The store file was written by a newer llmlab (its schema version is unknown here)."""


class BudgetError(LLMLabError, ValueError):
    """A run's estimated cost exceeds its budget (USD)."""


class AnalysisError(LLMLabError, ValueError):
    """A frame given to an analysis, chart or report function lacks a column it needs (the message names them)."""


class RoutingError(LLMLabError, ValueError):
    """No routing table can be derived (no results, no category, no model meets the targets)."""


class SandboxError(LLMLabError):
    """The local sandbox provider server failed to start or to answer a control request."""
