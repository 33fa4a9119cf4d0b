"""llmlab's exceptions: one root, a few subclasses.

::

    LLMLabError
    ├── PromptSetError (ValueError)      bad prompt-set input: file, line, column, variable named
    ├── ModelError (ValueError)          unknown model or alias, unusable model string
    │   └── MissingKeyError              the provider's API key variable is not set (its name, never a value)
    ├── StoreError                       the DuckDB store cannot be opened or written
    │   ├── SchemaVersionError           the file was written by a newer llmlab: refused, never rewritten
    │   ├── RunNotFoundError (KeyError)  no run with that id (or unique prefix) in the store
    │   └── CallNotFoundError (KeyError) no call with that id in the store
    ├── BudgetError (ValueError)         the estimated cost of a run exceeds its budget
    ├── AnalysisError (ValueError)       a results frame lacks a column an analysis needs
    ├── RoutingError (ValueError)        no routing table can be derived from the given results
    ├── SandboxError                     the local sandbox server failed to start or answer
    │   └── FaultSpecError (ValueError)  an injected fault is described wrongly
    ├── OptionsError (ValueError)        a run option has a bad value (the message names the option)
    ├── BatchError                       a provider batch cannot be submitted, found or read (batch mode)
    └── ProviderResponseError            raised inside an attempt, recorded as its error_type, never to the caller
        ├── StreamCutError               a stream broke off before the provider said it was complete
        └── MalformedResponseError       a body that cannot be parsed, or an empty "complete" stream

A failed provider call is *not* an exception: it is a recorded row with ``status = 'error'``.
"""

from __future__ import annotations

__all__ = [
    "AnalysisError",
    "BatchError",
    "BudgetError",
    "CallNotFoundError",
    "FaultSpecError",
    "LLMLabError",
    "MalformedResponseError",
    "MissingKeyError",
    "ModelError",
    "OptionsError",
    "PromptSetError",
    "ProviderResponseError",
    "RoutingError",
    "RunNotFoundError",
    "SandboxError",
    "SchemaVersionError",
    "StoreError",
    "StreamCutError",
]


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


class RunNotFoundError(StoreError, KeyError):
    """No run with that id (or unique id prefix) is in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CallNotFoundError(StoreError, KeyError, ValueError):
    """No call with that id is in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class FaultSpecError(SandboxError, ValueError):
    """A fault given to the sandbox is not one it knows, or its parameters are out of range."""


class OptionsError(LLMLabError, ValueError):
    """A run option has an unknown name or a bad value (the message names the option and what it accepts)."""


class BatchError(LLMLabError):
    """A provider batch (batch mode) cannot be submitted, found or read; the message names the run, the model
    and the batch id. Calls of a batch that failed are recorded as error rows, as in live mode."""


class ProviderResponseError(LLMLabError):
    """A provider's answer was unusable. Raised inside one attempt and recorded as the attempt's ``error_type``;
    a failed call is a row, never an exception to the caller."""


class StreamCutError(ProviderResponseError):
    """A streamed response broke off before the provider said it was complete (no finish reason, or the
    connection dropped after some content): retryable, and never recorded as a (short) answer."""


class MalformedResponseError(ProviderResponseError):
    """The provider answered with a body that cannot be parsed, or a stream that ended with neither content nor
    usage (LiteLLM's Anthropic stream parser skips undecodable events and reports an empty, "complete" answer):
    retryable."""
