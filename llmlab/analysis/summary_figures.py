"""What a summary row holds and the two interval formulas it uses, shared by the pandas summary
(:func:`llmlab.analysis.summarize`) and the one aggregated in DuckDB (:mod:`llmlab.analysis.summary_sql`)."""

from __future__ import annotations

import math

__all__ = ["SUMMARY_COLUMNS", "wilson_interval"]


#: Metric columns of :func:`summarize` (after the group columns), in order.
SUMMARY_COLUMNS: tuple[str, ...] = (
    "n",
    "n_ok",
    "n_scored",
    "n_prompts",
    "quality",
    "quality_ci_low",
    "quality_ci_high",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p50_ms",
    "ttft_p95_ms",
    "cost_usd",
    "n_cost_unknown",
    "cost_per_1k_prompts_usd",
    "input_tokens_mean",
    "output_tokens_mean",
    "error_rate",
    "cache_hit_rate",
    "retries",
    "fallback_rate",
)


def _t975(df: int) -> float:
    """Two-sided 95 % critical value of Student's t with ``df`` degrees of freedom (NaN for df < 1).

    ``scipy.special.stdtrit(df, 0.975)``, the same value as ``scipy.stats.t.ppf(0.975, df)``: importing
    ``scipy.special`` takes about a third of ``scipy.stats``'s time, which a first summary (the charts tab) waits
    for. Imported on first use so importing this module stays light.
    """
    if df < 1:
        return math.nan
    from scipy.special import stdtrit

    return float(stdtrit(df, 0.975))


def wilson_interval(successes: float, n: float, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Args:
        successes: number of successes (0 ≤ successes ≤ n).
        n: number of trials.
        z: normal quantile (1.96 for a two-sided 95 % interval).

    Returns:
        ``(low, high)`` as proportions in [0, 1]; ``(nan, nan)`` when ``n`` is 0.

    Raises:
        ValueError: when ``successes`` is negative or larger than ``n``.
    """
    if n <= 0:
        return (math.nan, math.nan)
    if successes < 0 or successes > n:
        raise ValueError(f"successes must lie in [0, n]; got successes={successes}, n={n}")
    p = successes / n
    z2 = z * z
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    return (max(0.0, center - half), min(1.0, center + half))
