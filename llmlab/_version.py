"""The llmlab version (one place; the facade and run records read it)."""

__all__ = [
    "__version__",
]

__version__ = "0.1.0"
