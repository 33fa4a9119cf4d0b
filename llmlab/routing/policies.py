"""Routing policies fitted on recorded results: per-category table, or a per-prompt router learned from the text.

:func:`fit_policy` takes a results frame (:meth:`llmlab.store.Store.results`, or any frame with ``prompt_id,
prompt, model, quality, cost_usd`` and optionally ``category, status``) and returns a :class:`Policy`:

- ``kind="category"``: :class:`CategoryPolicy`, wraps :func:`llmlab.routing.table.routing_table` (it sees the
  category label); with a budget or minimum quality, the table's tolerance is swept and chosen in sample.
- ``kind="prompt"``: :class:`PromptPolicy`, prompt text only. Models are ordered by mean cost per call. For every
  pair (cheaper *i*, dearer *j*) a scikit-learn ``LogisticRegression`` on hashed word + character n-gram tf-idf
  (:mod:`llmlab.routing.textmodel`) predicts whether *j* does better than, as well as, or worse than *i* on the
  prompt (training prompts weighted by the size of the quality difference, ties weight 1; binary outcomes: all
  weights 1); its score is ``P(better) - P(worse)`` in [-1, 1] (the expected sign of the quality gain). Routing starts
  at the cheapest model and moves to each dearer model whose score against the current one exceeds the threshold.
  The threshold is calibrated on the training prompts with cross-fitted (out-of-fold) scores to the budget
  (``target_cost_per_1k_usd``: best quality whose cost per 1,000 prompts is at most the budget) or to the
  quality floor (``min_quality``: cheapest threshold reaching it); neither: threshold 0 (dearer model only when it
  is predicted more likely better than worse).

:func:`evaluate_policy` replays a policy over recorded results (normally held-out prompts). Policies are saved as
plain JSON (``to_json`` / :func:`Policy.from_json`, never pickle); a loaded prompt policy scores with the pure
NumPy scorer of :mod:`llmlab.routing.textmodel`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from llmlab.errors import RoutingError
from llmlab.routing.textmodel import SHAPE_SCALE

__all__ = ["CategoryPolicy", "Policy", "PromptPolicy", "evaluate_policy", "fit_policy", "outcome_matrices",
           "register_kind"]

FORMAT = "llmlab.routing.policy/1"


def outcome_matrices(results: Any, models: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-prompt outcomes: ``{"prompts": frame prompt_id/prompt/category, "models": [...], "quality": (n, k),
    "cost": (n, k) USD per call}``, means over samples; error rows of scored prompts count quality 0
    (:func:`llmlab.analysis.effective_quality`). Prompts lacking a quality for some model are dropped.

    Raises RoutingError for missing columns or when no prompt has every model scored.
    """
    import pandas as pd

    need = {"prompt_id", "prompt", "model", "quality", "cost_usd"}
    missing = need - set(results.columns)
    if missing:
        raise RoutingError(f"results lack column(s) {', '.join(sorted(missing))}")
    df = results.copy()
    if "status" in df.columns:
        from llmlab.analysis import effective_quality

        df["quality"] = effective_quality(df)
    if "category" not in df.columns:
        df["category"] = None
    if models is not None:
        df = df[df["model"].isin(list(models))]
    q = df.pivot_table(index="prompt_id", columns="model", values="quality", aggfunc="mean")
    c = df.pivot_table(index="prompt_id", columns="model", values="cost_usd", aggfunc="mean")
    models = list(models) if models is not None else sorted(q.columns)
    q = q.reindex(columns=models).dropna()
    if q.empty:
        raise RoutingError("no prompt has a quality for every model")
    c = c.reindex(index=q.index, columns=models).fillna(0.0)
    prompts = df.drop_duplicates("prompt_id").set_index("prompt_id").loc[q.index, ["prompt", "category"]]
    return {"prompts": pd.DataFrame({"prompt_id": q.index, "prompt": prompts["prompt"].to_numpy(),
                                     "category": prompts["category"].to_numpy()}),
            "models": models, "quality": q.to_numpy(float), "cost": c.to_numpy(float)}


def _pick(choice: np.ndarray, om: dict[str, Any]) -> tuple[float, float]:
    rows = np.arange(len(choice))
    return float(om["quality"][rows, choice].mean()), float(om["cost"][rows, choice].mean() * 1000)


class Policy:
    """A routing policy. ``models`` are ordered cheapest first (mean cost per call on the training results)."""

    kind = "base"

    def __init__(self, models: Sequence[str]) -> None:
        self.models = list(models)

    def choose(self, frame: Any, *, cache: Any = None) -> np.ndarray:  # pragma: no cover - abstract
        """Index into ``models`` per row of ``frame`` (columns ``prompt`` and, when used, ``category``)."""
        raise NotImplementedError

    def route(self, prompt: str, category: str | None = None) -> str:
        """The model for one prompt (``category`` is used by category policies only)."""
        import pandas as pd

        return self.models[int(self.choose(pd.DataFrame({"prompt": [prompt], "category": [category]}))[0])]

    def decide(self, prompt: str, category: str | None = None) -> tuple[int, dict[str, Any]]:
        """One routing decision without pandas: ``(index into models, details)``; ``details`` holds the policy's
        ``score`` and ``threshold`` where it has them (JSON-safe floats). Subclasses override it for speed."""
        import pandas as pd

        i = int(self.choose(pd.DataFrame({"prompt": [prompt], "category": [category]}))[0])
        return i, {}

    def export(self, directory: str | os.PathLike[str], **kwargs: Any) -> Path:
        """Write the LiteLLM config serving this policy (and, for prompt and complexity policies, the model file and
        the plugin module) into ``directory``; returns the config's path
        (:func:`llmlab.routing.policy_export.write_policy_config`)."""
        from llmlab.routing.policy_export import write_policy_config

        return write_policy_config(self, directory, **kwargs)

    def portable(self) -> Policy:
        """The policy as its JSON model file loads it (pure NumPy scorer): what a server runs."""
        return Policy.from_dict(json.loads(json.dumps(self.to_dict())))

    def route_many(self, frame: Any, *, cache: Any = None) -> list[str]:
        """The model per row of ``frame`` (needs ``prompt``; ``category`` for category policies)."""
        return [self.models[i] for i in self.choose(frame, cache=cache)]

    def to_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike[str]) -> Path:
        """Write the policy as a plain JSON model file; returns the path."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), separators=(",", ":")), encoding="utf-8")
        return p

    @staticmethod
    def from_json(path: str | os.PathLike[str]) -> Policy:
        """Load a policy written by :meth:`to_json`. Raises RoutingError for an unknown format or kind."""
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise RoutingError(f"cannot read the policy file {path}: {exc.strerror or exc}") from exc
        except json.JSONDecodeError as exc:
            raise RoutingError(f"{path}, line {exc.lineno}, column {exc.colno}: not valid JSON ({exc.msg})") from exc
        except UnicodeDecodeError as exc:
            raise RoutingError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
        return Policy.from_dict(d, source=str(path))

    @staticmethod
    def from_dict(d: Any, *, source: str = "policy") -> Policy:
        """A policy from its JSON dict (:meth:`to_dict`). Raises RoutingError naming ``source`` for an unknown format
        or kind, or a missing / malformed field."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            got = d.get("format") if isinstance(d, dict) else type(d).__name__
            raise RoutingError(f"{source}: not an llmlab policy file (format {got!r}, expected {FORMAT})")
        try:
            if d["kind"] == "category":
                return CategoryPolicy._from_dict(d)
            if d["kind"] == "prompt":
                return PromptPolicy._from_dict(d)
            if d["kind"] in _KINDS:
                return _KINDS[d["kind"]][0]._from_dict(d)
        except RoutingError as exc:
            raise RoutingError(f"{source}: {exc}") from exc
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RoutingError(f"{source}: malformed {d.get('kind')!r} policy ({type(exc).__name__}: {exc})") from exc
        raise RoutingError(f"{source}: unknown policy kind {d.get('kind')!r}")


class CategoryPolicy(Policy):
    """Per-category table (:func:`routing_table`). ``scores(frame)``: the training gain of the dearest model over
    the cheapest in the row's category (pooled gain for unseen categories), for threshold sweeps."""

    kind = "category"

    def __init__(self, models: Sequence[str], mapping: dict[str, str], default: str, gains: dict[str, float],
                 pooled_gain: float, table: Any = None) -> None:
        super().__init__(models)
        self.mapping, self.default, self.gains, self.pooled_gain, self.table = mapping, default, gains, pooled_gain, table

    def choose(self, frame: Any, *, cache: Any = None) -> np.ndarray:
        cats = frame["category"] if "category" in frame.columns else [None] * len(frame)
        return np.array([self.models.index(self.mapping.get(c, self.default)) for c in cats], dtype=int)

    def scores(self, frame: Any, *, cache: Any = None) -> np.ndarray:
        cats = frame["category"] if "category" in frame.columns else [None] * len(frame)
        return np.array([self.gains.get(c, self.pooled_gain) for c in cats], dtype=float)

    def decide(self, prompt: str, category: str | None = None) -> tuple[int, dict[str, Any]]:
        model = self.mapping.get(category, self.default) if category is not None else self.default
        return self.models.index(model), {"category": category, "score": self.gains.get(category, self.pooled_gain)}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "models": self.models, "mapping": self.mapping,
                "default": self.default, "gains": self.gains, "pooled_gain": self.pooled_gain}

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> CategoryPolicy:
        return cls(d["models"], d["mapping"], d["default"], d["gains"], d["pooled_gain"])


class PromptPolicy(Policy):
    """Learned per-prompt router (see the module docstring). ``pairs``: ``{(i, j): LogisticRegression}`` with
    ``i < j`` indices into ``models``; ``features``: the fitted :class:`~llmlab.routing.textmodel.TextFeatures`;
    ``threshold`` in [-1, 1] (higher: fewer calls to dearer models); ``calibration``: the cross-fitted training
    figures at the chosen threshold (``quality``, ``cost_per_1k_usd``, ``strong_share``) or None."""

    kind = "prompt"

    def __init__(self, models: Sequence[str], features: Any, pairs: dict[tuple[int, int], Any], threshold: float,
                 calibration: dict[str, Any] | None = None) -> None:
        super().__init__(models)
        self.features, self.pairs, self.threshold, self.calibration = features, pairs, threshold, calibration
        self._pure: dict[str, Any] | None = None

    # -- scoring ----------------------------------------------------------------------------------------------
    def _x(self, texts: Sequence[str], cache: Any) -> Any:
        from llmlab.routing.textmodel import raw_counts

        counts = cache.rows(texts) if cache is not None else raw_counts(texts, self.features.blocks)
        return self.features.transform(counts, texts)

    def pair_scores(self, frame: Any, *, cache: Any = None) -> dict[tuple[int, int], np.ndarray]:
        """``{(i, j): P(j better) - P(j worse)}`` per row of ``frame`` (shape (n,) each)."""
        texts = [str(t) for t in frame["prompt"]]
        if self._pure is not None:
            return self._pure_scores(texts)
        x = self._x(texts, cache)
        return {ij: _signed(lr.classes_, lr.predict_proba(x)) for ij, lr in self.pairs.items()}

    def scores(self, frame: Any, *, cache: Any = None) -> np.ndarray:
        """Score of the dearest model against the cheapest, shape (n,): the two-model router's score."""
        return self.pair_scores(frame, cache=cache)[(0, len(self.models) - 1)]

    def choose(self, frame: Any, *, cache: Any = None, threshold: float | None = None) -> np.ndarray:
        return _cascade(self.pair_scores(frame, cache=cache), len(self.models), len(frame),
                        self.threshold if threshold is None else threshold)

    def decide(self, prompt: str, category: str | None = None) -> tuple[int, dict[str, Any]]:
        """``(index, {"score": the deciding comparison's score, "threshold", "scores": {"cheaper>dearer": s}})``
        for one prompt (pure NumPy when loaded from JSON; a fitted policy scores with scikit-learn)."""
        if self._pure is not None:
            pure = self._pure_scores([str(prompt)])
        else:
            import pandas as pd

            pure = self.pair_scores(pd.DataFrame({"prompt": [str(prompt)]}))
        s = {ij: float(v[0]) for ij, v in pure.items()}
        cur, seen, last = 0, {}, None
        for j in range(1, len(self.models)):
            seen[f"{self.models[cur]}>{self.models[j]}"] = round(s[(cur, j)], 6)
            last = s[(cur, j)]
            if s[(cur, j)] > self.threshold:
                cur = j
        return cur, {"score": None if last is None else round(last, 6), "threshold": self.threshold, "scores": seen}

    # -- portable model file ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        if self._pure is not None:
            return self._pure["dict"]
        f = self.features
        return {
            "format": FORMAT, "kind": self.kind, "models": self.models, "threshold": self.threshold,
            "calibration": self.calibration,
            "features": {"blocks": [{**b, "ngram_range": list(b["ngram_range"])} for b in f.blocks],
                         "lowercase": True, "token_pattern": r"(?u)\b\w\w+\b", "hash": "murmurhash3_32 seed 0, |h| mod n",
                         "sublinear_tf": True, "norm": "l2 per block", "columns": [c.tolist() for c in f.columns],
                         "idf": [i.tolist() for i in f.idf], "shape": "ln1p of chars, numbers, sentence ends, "
                         "line breaks; standardised, times shape_scale", "shape_mean": f.shape_mean.tolist(),
                         "shape_std": f.shape_std.tolist(), "shape_scale": SHAPE_SCALE},
            "pairs": [{"cheaper": i, "dearer": j, "classes": [int(c) for c in lr.classes_],
                       "coef": lr.coef_.tolist(), "intercept": lr.intercept_.tolist()}
                      for (i, j), lr in sorted(self.pairs.items())],
        }

    @classmethod
    def _from_dict(cls, d: dict[str, Any]) -> PromptPolicy:
        pol = cls(d["models"], None, {}, float(d["threshold"]), d.get("calibration"))
        f = d["features"]
        if f.get("shape_scale") != SHAPE_SCALE:
            raise RoutingError(f"policy file shape_scale {f.get('shape_scale')!r}: this llmlab uses {SHAPE_SCALE}")
        pol._pure = {"dict": d, "blocks": f["blocks"], "idf": [np.asarray(i) for i in f["idf"]],
                     "shape_mean": f["shape_mean"], "shape_std": f["shape_std"],
                     "columns": [{int(h): k for k, h in enumerate(c)} for c in f["columns"]],
                     "memo": [{} for _ in f["columns"]],
                     "pairs": {(p["cheaper"], p["dearer"]): (np.asarray(p["classes"]), np.asarray(p["coef"]),
                                                              np.asarray(p["intercept"])) for p in d["pairs"]}}
        width = sum(len(c) for c in f["columns"]) + 4
        if len(f["idf"]) != len(f["columns"]) or any(len(i) != len(c) for i, c in zip(f["idf"], f["columns"], strict=True)):
            raise RoutingError("features: idf and columns differ in length")
        k = len(pol.models)
        need = {(i, j) for j in range(1, k) for i in range(j)}
        if set(pol._pure["pairs"]) != need:
            raise RoutingError(f"pairs {sorted(pol._pure['pairs'])} do not cover the {k} models (need {sorted(need)})")
        for (i, j), (classes, coef, intercept) in pol._pure["pairs"].items():
            rows = 1 if len(classes) == 2 else len(classes)
            if coef.ndim != 2 or coef.shape != (rows, width) or intercept.shape != (rows,) or not np.isfinite(coef).all():
                raise RoutingError(f"pair ({i}, {j}): coefficients of shape {coef.shape}, expected ({rows}, {width}) "
                                   "finite numbers")
        return pol

    def _pure_scores(self, texts: Sequence[str]) -> dict[tuple[int, int], np.ndarray]:
        from llmlab.routing.textmodel import pure_features

        pure = self._pure
        assert pure is not None
        out: dict[tuple[int, int], list[float]] = {ij: [] for ij in pure["pairs"]}
        for t in texts:
            pos, val = pure_features(t, pure["blocks"], pure["columns"], pure["idf"], pure["shape_mean"],
                                     pure["shape_std"], memo=pure["memo"])
            for ij, (classes, coef, intercept) in pure["pairs"].items():
                z = coef[:, pos] @ val + intercept
                if len(classes) == 2:
                    p1 = 1.0 / (1.0 + math.exp(-float(z[0])))
                    proba = np.array([[1.0 - p1, p1]])
                else:
                    e = np.exp(z - z.max())
                    proba = (e / e.sum())[None, :]
                out[ij].append(float(_signed(classes, proba)[0]))
        return {ij: np.asarray(v) for ij, v in out.items()}


#: further policy kinds: kind -> (class with ``_from_dict``, fitter ``(outcome matrices, budget=, min_quality=,
#: **kwargs) -> Policy``); :mod:`llmlab.routing.complexity` registers ``"complexity"`` (imported by the package).
_KINDS: dict[str, tuple[Any, Any]] = {}


def register_kind(kind: str, cls: Any, fitter: Any) -> None:
    """Make ``fit_policy(kind=...)`` and :meth:`Policy.from_json` know another policy kind."""
    _KINDS[kind] = (cls, fitter)


def _signed(classes: Any, proba: np.ndarray) -> np.ndarray:
    """``P(+1) - P(-1)`` from predict_proba columns ordered as ``classes`` (labels -1 worse, 0 tie, +1 better)."""
    cls = [int(c) for c in classes]
    plus = proba[:, cls.index(1)] if 1 in cls else 0.0
    minus = proba[:, cls.index(-1)] if -1 in cls else 0.0
    return np.asarray(plus - minus, dtype=float)


def _cascade(scores: dict[tuple[int, int], np.ndarray], k: int, n: int, threshold: float) -> np.ndarray:
    cur = np.zeros(n, dtype=int)
    for j in range(1, k):
        s = np.empty(n)
        for i in range(j):
            m = cur == i
            s[m] = scores[(i, j)][m]
        cur = np.where(s > threshold, j, cur)
    return cur


def _order_by_cost(om: dict[str, Any]) -> dict[str, Any]:
    order = np.argsort(om["cost"].mean(axis=0), kind="stable")
    return {**om, "models": [om["models"][i] for i in order], "quality": om["quality"][:, order],
            "cost": om["cost"][:, order]}


def _fit_pairs(x: Any, q: np.ndarray, C: float, seed: int) -> dict[tuple[int, int], Any]:
    from sklearn.linear_model import LogisticRegression

    pairs = {}
    for j in range(1, q.shape[1]):
        for i in range(j):
            d = np.round(q[:, j] - q[:, i], 9)
            y = np.sign(d).astype(int)
            if len(np.unique(y)) < 2:
                raise RoutingError(f"the training prompts never separate models {i} and {j}: nothing to learn")
            # a prompt counts by how much routing it matters: |gain| relative to the mean non-zero |gain|; ties 1
            w = np.where(y == 0, 1.0, np.abs(d) / np.abs(d[y != 0]).mean())
            pairs[(i, j)] = LogisticRegression(C=C, max_iter=1000, random_state=seed).fit(x, y, sample_weight=w)
    return pairs


def _calibrate(scores: dict[tuple[int, int], np.ndarray], om: dict[str, Any], budget: float | None,
               min_quality: float | None) -> tuple[float, dict[str, Any]]:
    n, k = om["quality"].shape
    cand = np.unique(np.concatenate([np.quantile(np.concatenate(list(scores.values())), np.linspace(0, 1, 201)),
                                     [-1.0 - 1e-9, 0.0, 1.0]]))
    rows = []
    for t in cand:
        ch = _cascade(scores, k, n, float(t))
        q, c = _pick(ch, om)
        rows.append((float(t), q, c, float((ch == k - 1).mean())))
    ok = [r for r in rows if budget is None or r[2] <= budget + 1e-12]
    if not ok:
        ok = [min(rows, key=lambda r: r[2])]  # nothing fits the budget: the cheapest operating point
    if min_quality is not None:
        meet = [r for r in ok if r[1] >= min_quality - 1e-12]
        best = min(meet, key=lambda r: (r[2], -r[1])) if meet else max(ok, key=lambda r: (r[1], -r[2]))
    else:
        best = max(ok, key=lambda r: (r[1], -r[2], r[0]))
    return best[0], {"quality": best[1], "cost_per_1k_usd": best[2], "strong_share": best[3],
                     "met": (budget is None or best[2] <= budget + 1e-12)
                     and (min_quality is None or best[1] >= min_quality - 1e-12)}


def fit_policy(results: Any, kind: str = "category", target_cost_per_1k_usd: float | None = None,
               min_quality: float | None = None, seed: int = 0, *, models: Sequence[str] | None = None,
               C: float = 0.3, folds: int = 5, min_df: int = 2, cache: Any = None, **table_kwargs: Any) -> Policy:
    """Fit a routing policy on recorded results.

    Args:
        results: results frame (one row per call; see the module docstring for the columns).
        kind: ``"category"`` (table per category label), ``"prompt"`` (learned from the prompt text only) or
            ``"complexity"`` (tiers of prompt features, :mod:`llmlab.routing.complexity`; ``tolerance``,
            ``n_tiers``, ``ridge`` via ``table_kwargs``).
        target_cost_per_1k_usd: budget, USD per 1,000 prompts; the best-quality operating point within it.
        min_quality: quality floor (0..1); the cheapest operating point reaching it (within the budget if given).
        seed: seed for the cross-fitting folds and the solver.
        models: restrict to these models (default: all in ``results``).
        C: inverse L2 strength of the logistic regressions. folds: cross-fitting folds for the threshold.
        min_df: a hashed n-gram must occur in this many training prompts to be kept.
        cache: a :class:`~llmlab.routing.textmodel.CountCache` holding the prompts' hashed counts (speed only).
        table_kwargs: passed to :func:`routing_table` for ``kind="category"`` (``min_n``, ``tolerance`` ...); with
            ``alpha`` (e.g. 0.05) to :func:`llmlab.routing.confident.confident_table` instead (paired comparisons).

    Returns a :class:`CategoryPolicy` or :class:`PromptPolicy`. Raises RoutingError for an unknown kind, fewer than
    two models, missing columns, or training prompts on which no pair of models ever differs.
    """
    om = _order_by_cost(outcome_matrices(results, models))
    if len(om["models"]) < 2:
        raise RoutingError("routing needs at least two models with results")
    if kind == "category":
        return _fit_category(results, om, target_cost_per_1k_usd, min_quality, table_kwargs)
    if kind in _KINDS:
        return _KINDS[kind][1](om, budget=target_cost_per_1k_usd, min_quality=min_quality, **table_kwargs)
    if kind != "prompt":
        raise RoutingError(f"unknown policy kind {kind!r}: use 'category', 'prompt' or {', '.join(map(repr, _KINDS))}")
    from llmlab.routing.textmodel import TextFeatures, raw_counts

    texts = [str(t) for t in om["prompts"]["prompt"]]
    counts = cache.rows(texts) if cache is not None else raw_counts(texts)
    threshold, calib = 0.0, None
    if target_cost_per_1k_usd is not None or min_quality is not None:
        rng = np.random.default_rng(seed)
        fold = rng.permutation(len(texts)) % folds
        oof: dict[tuple[int, int], np.ndarray] = {}
        for f in range(folds):
            tr, te = fold != f, fold == f
            ttr, tte = [t for t, k in zip(texts, tr, strict=True) if k], [t for t, k in zip(texts, te, strict=True) if k]
            feats = TextFeatures(min_df=min_df).fit([m[tr] for m in counts], ttr)
            pairs = _fit_pairs(feats.transform([m[tr] for m in counts], ttr), om["quality"][tr], C, seed)
            xte = feats.transform([m[te] for m in counts], tte)
            for ij, lr in pairs.items():
                oof.setdefault(ij, np.zeros(len(texts)))[te] = _signed(lr.classes_, lr.predict_proba(xte))
        threshold, calib = _calibrate(oof, om, target_cost_per_1k_usd, min_quality)
    feats = TextFeatures(min_df=min_df).fit(counts, texts)
    pairs = _fit_pairs(feats.transform(counts, texts), om["quality"], C, seed)
    return PromptPolicy(om["models"], feats, pairs, threshold, calib)


def _fit_category(results: Any, om: dict[str, Any], budget: float | None, min_quality: float | None,
                  table_kwargs: dict[str, Any]) -> CategoryPolicy:
    from llmlab.routing.table import DEFAULT_CATEGORY, routing_table

    models = om["models"]
    res = results[results["model"].isin(models)]
    defaults = {"category": DEFAULT_CATEGORY, "sample_index": 0, "status": "ok", "latency_ms": math.nan}
    res = res.assign(**{k: v for k, v in defaults.items() if k not in res.columns})
    kw = {"min_n": 1, **table_kwargs}
    make = routing_table
    if "alpha" in kw:  # confidence-aware: cheaper models only where a paired comparison backs them
        from llmlab.routing.confident import confident_table as make
    if budget is None and min_quality is None:
        tables = [make(res, **kw)]
    else:
        kw.pop("tolerance", None)
        tables = [make(res, tolerance=t, **kw) for t in (0.0, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1,
                                                                  0.15, 0.2, 0.3, 0.5, 1.0)]
    prompts = om["prompts"]
    cands = []
    for tb in tables:
        mapping = {r["category"]: r["model"] for r in tb.to_dict("records") if r["category"] != DEFAULT_CATEGORY}
        default = str(tb.loc[tb["category"] == DEFAULT_CATEGORY, "model"].iloc[0])
        ch = np.array([models.index(mapping.get(c, default)) for c in prompts["category"]])
        q, c = _pick(ch, om)
        cands.append((q, c, tb, mapping, default))
    ok = [x for x in cands if budget is None or x[1] <= budget + 1e-12] or [min(cands, key=lambda x: x[1])]
    meet = [x for x in ok if min_quality is None or x[0] >= min_quality - 1e-12]
    best = min(meet, key=lambda x: (x[1], -x[0])) if (meet and min_quality is not None) else \
        max(ok, key=lambda x: (x[0], -x[1]))
    gain = om["quality"][:, -1] - om["quality"][:, 0]
    cats = prompts["category"].to_numpy()
    gains = {str(c): float(gain[cats == c].mean()) for c in dict.fromkeys(cats) if c is not None}
    return CategoryPolicy(models, best[3], best[4], gains, float(gain.mean()), best[2])


def evaluate_policy(policy: Policy, results: Any, *, cache: Any = None) -> dict[str, Any]:
    """Replay ``policy`` over recorded results: each prompt gets its routed model's recorded outcome.

    Returns ``{"quality" (mean, 0..1), "cost_per_1k_usd" (USD per 1,000 prompts), "share_by_model" ({model:
    share}), "n" (prompts), "per_model" ({model: {quality, cost_per_1k_usd}} for each single model)}``. Only
    prompts with a quality for every policy model count. Raises RoutingError as :func:`outcome_matrices`.
    """
    om = outcome_matrices(results, policy.models)
    ch = policy.choose(om["prompts"], cache=cache)
    q, c = _pick(ch, om)
    share = np.bincount(ch, minlength=len(policy.models)) / len(ch)
    return {"quality": q, "cost_per_1k_usd": c, "n": len(ch),
            "share_by_model": {m: float(s) for m, s in zip(policy.models, share, strict=True)},
            "per_model": {m: {"quality": float(om["quality"][:, i].mean()),
                              "cost_per_1k_usd": float(om["cost"][:, i].mean() * 1000)}
                          for i, m in enumerate(policy.models)}}
