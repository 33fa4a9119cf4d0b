"""Variants of the learned router tried on GSM8K and MT-Bench (issue 12), same protocol as ``routing_real.py``.

Each variant scores the held-out half of ``--splits`` random 50/50 splits by unit (RouteLLM's contaminated prompts
dropped, MT-Bench one unit per question routed on its first turn), prompt text only, no category label, fitted on
the other half only; APGR / CPT(50%) as RouteLLM computes them (:mod:`llmlab.routing.metrics`). Every variant sees
the same splits (``--seed``), so differences between rows are paired; the spread over splits is printed.

Variants (``base`` is what ``fit_policy(kind="prompt")`` fits):
- ``base``: hashed word 1-2 + char_wb 3-5 n-grams, idf, sublinear tf, 4 shape features; logistic regression on
  better / tie / worse (C 0.3), score P(better) - P(worse). ``base_C*``: other regularisation.
- ``ridge_a*``: ridge regression of the quality difference (strong minus weak) on the same features.
- ``ens_base_ridge``: mean rank of ``base`` and ``ridge_a1``.
- ``label_better`` / ``label_weakfail``: binary logistic on "strong strictly better" / "weak scores below 0.5".
- ``word_only`` / ``char_only`` / ``word_1_3``: other n-gram blocks.
- ``dense_lr`` / ``dense_ridge`` / ``dense_gbm``: 13 hand-made shape features (length, numbers, distinct numbers,
  sentences, percents, currency, multiplicative words, decimals / fractions, operators), logistic / ridge /
  gradient boosting; ``ens_base_dense``: mean rank with ``base``.
- ``knn20``: similarity-weighted mean quality difference of the 20 nearest training prompts (TF-IDF cosine);
  ``ens_base_knn``: ``base`` rank + 0.5 × ``knn20`` rank.
- ``transfer_plus_half`` (``--transfer``, slow: refits on all of the other two benchmarks per split): ``base``
  fitted on the in-domain half plus every unit of the other two benchmarks.

Run: PYTHONPATH=. .venv/bin/python benchmarks/routing_attempts.py [--splits 20] [--seed 0] [--only base,ridge_a3]
Last line: one JSON object ``{benchmark: {variant: {apgr, apgr_lo, apgr_hi, cpt50}}}``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from llmlab.routing import routellm as rl  # noqa: E402
from llmlab.routing.metrics import apgr, cpt, pgr_curve  # noqa: E402
from llmlab.routing.policies import _fit_pairs, _signed, outcome_matrices  # noqa: E402
from llmlab.routing.textmodel import BLOCKS, CountCache, TextFeatures  # noqa: E402

W13 = ({"analyzer": "word", "ngram_range": (1, 3), "n_features": 2**20}, BLOCKS[1])
_CACHES: dict[tuple[str, str], CountCache] = {}


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a) / len(a)


def _xy(tr_t, te_t, bench, texts_of, blocks=BLOCKS):
    cache = _CACHES.setdefault((str(blocks), bench), CountCache(texts_of(bench), blocks))
    f = TextFeatures(blocks=blocks).fit(cache.rows(tr_t), tr_t)
    return f.transform(cache.rows(tr_t), tr_t), f.transform(cache.rows(te_t), te_t)


def _dense(texts):
    rows = []
    for t in texts:
        nums = re.findall(r"\d+(?:[.,]\d+)?", t)
        rows.append([math.log1p(v) for v in (
            len(t), len(t.split()), len(nums), len(set(nums)), len(re.findall(r"[.?!](\s|$)", t)), t.count("\n"),
            t.count("?"), len(re.findall(r"%|percent", t)), len(re.findall(r"\$", t)),
            len(re.findall(r"\b(?:half|twice|double|triple|third|quarter|each|every|per|times)\b", t, re.I)),
            sum(len(n) for n in nums), len(re.findall(r"\d+\.\d+|\d+/\d+", t)), len(re.findall(r"[=+\-*/^]", t)))])
    return np.array(rows)


def variants(texts_of):
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.preprocessing import StandardScaler

    def base(tr_t, tr_q, te_t, bench, C=0.3, blocks=BLOCKS):
        x, xt = _xy(tr_t, te_t, bench, texts_of, blocks)
        lr = _fit_pairs(x, tr_q, C, 0)[(0, 1)]
        return _signed(lr.classes_, lr.predict_proba(xt))

    def ridge(tr_t, tr_q, te_t, bench, alpha=1.0):
        x, xt = _xy(tr_t, te_t, bench, texts_of)
        return Ridge(alpha=alpha).fit(x, tr_q[:, 1] - tr_q[:, 0]).predict(xt)

    def binary(tr_t, tr_q, te_t, bench, label):
        x, xt = _xy(tr_t, te_t, bench, texts_of)
        y = (tr_q[:, 1] - tr_q[:, 0] > 1e-9) if label == "better" else (tr_q[:, 0] < 0.5)
        return LogisticRegression(C=0.3, max_iter=1000).fit(x, y.astype(int)).predict_proba(xt)[:, 1]

    def dense(tr_t, tr_q, te_t, bench, model):
        sc = StandardScaler().fit(_dense(tr_t))
        x, xt, d = sc.transform(_dense(tr_t)), sc.transform(_dense(te_t)), tr_q[:, 1] - tr_q[:, 0]
        if model == "ridge":
            return Ridge(alpha=10).fit(x, d).predict(xt)
        if model == "gbm":
            return HistGradientBoostingRegressor(max_iter=100, learning_rate=0.05, max_depth=3,
                                                 min_samples_leaf=20).fit(x, d).predict(xt)
        lr = LogisticRegression(C=1.0, max_iter=1000).fit(x, np.sign(np.round(d, 9)).astype(int))
        return _signed(lr.classes_, lr.predict_proba(xt))

    def knn(tr_t, tr_q, te_t, bench, k=20):
        x, xt = _xy(tr_t, te_t, bench, texts_of)
        sim = (xt @ x.T).toarray()
        idx = np.argsort(-sim, axis=1)[:, :k]
        w = np.take_along_axis(sim, idx, 1)
        return ((tr_q[:, 1] - tr_q[:, 0])[idx] * w).sum(1) / (w.sum(1) + 1e-9)

    return {
        "base": base,
        "base_C0.1": lambda *a: base(*a, C=0.1), "base_C1": lambda *a: base(*a, C=1.0),
        "base_C3": lambda *a: base(*a, C=3.0),
        "ridge_a0.3": lambda *a: ridge(*a, alpha=0.3), "ridge_a1": ridge, "ridge_a3": lambda *a: ridge(*a, alpha=3.0),
        "ens_base_ridge": lambda *a: _rank(base(*a)) + _rank(ridge(*a)),
        "label_better": lambda *a: binary(*a, "better"), "label_weakfail": lambda *a: binary(*a, "weakfail"),
        "word_only": lambda *a: base(*a, blocks=(BLOCKS[0],)), "char_only": lambda *a: base(*a, blocks=(BLOCKS[1],)),
        "word_1_3": lambda *a: base(*a, blocks=W13),
        "dense_lr": lambda *a: dense(*a, "lr"), "dense_ridge": lambda *a: dense(*a, "ridge"),
        "dense_gbm": lambda *a: dense(*a, "gbm"),
        "ens_base_dense": lambda *a: _rank(base(*a)) + _rank(dense(*a, "lr")),
        "knn20": knn, "ens_base_knn": lambda *a: _rank(base(*a)) + 0.5 * _rank(knn(*a)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--splits", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma-separated variant names")
    ap.add_argument("--transfer", action="store_true", help="also the slow transfer_plus_half variant")
    ap.add_argument("--data", default=None)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    data = rl.load_benchmarks(rl.data_dir(args.data))
    om_of = {b: outcome_matrices(df, [rl.WEAK, rl.STRONG]) for b, df in data.items()}

    def texts_of(bench: str) -> list[str]:
        if bench == "all":
            return [t for om in om_of.values() for t in om["prompts"]["prompt"]]
        return om_of[bench]["prompts"]["prompt"].tolist()

    vs = variants(texts_of)
    if args.transfer:
        def transfer(tr_t, tr_q, te_t, bench):
            others = [b for b in om_of if b != bench]
            t = tr_t + [x for b in others for x in texts_of(b)]
            q = np.vstack([tr_q] + [om_of[b]["quality"] for b in others])
            return vs["base"](t, q, te_t, "all")
        vs["transfer_plus_half"] = transfer
    names = args.only.split(",") if args.only else list(vs)
    unknown = [n for n in names if n not in vs]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {sorted(vs)}")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for bench in ("gsm8k", "mt_bench"):
        om = om_of[bench]
        texts, q = texts_of(bench), om["quality"]
        n = len(texts)
        rng = np.random.default_rng(args.seed)
        splits = [rng.permutation(n) for _ in range(args.splits)]
        out[bench] = {}
        for name in names:
            t1 = time.perf_counter()
            vals = []
            for k, perm in enumerate(splits):
                tr, te = perm[: n // 2], perm[n // 2:]
                s = np.asarray(vs[name]([texts[i] for i in tr], q[tr], [texts[i] for i in te], bench), dtype=float)
                s = s + 1e-12 * np.random.default_rng(k).random(len(te))  # ties broken the same way for every variant
                c = pgr_curve(s, q[te, 1], q[te, 0], n_points=10)
                vals.append((apgr(c), cpt(c, 0.5)))
            a = np.array(vals)
            r = {"apgr": float(a[:, 0].mean()), "apgr_lo": float(np.quantile(a[:, 0], 0.025)),
                 "apgr_hi": float(np.quantile(a[:, 0], 0.975)), "cpt50": float(a[:, 1].mean())}
            out[bench][name] = r
            print(f"{bench:<9} {name:<20} APGR {r['apgr']:.3f} [{r['apgr_lo']:.3f}, {r['apgr_hi']:.3f}]  "
                  f"CPT(50%) {r['cpt50']:.1f}%  ({time.perf_counter() - t1:.0f}s)", flush=True)
    print(f"total {time.perf_counter() - t0:.0f}s")
    print(json.dumps({b: {v: {k: round(x, 4) for k, x in r.items()} for v, r in vs_.items()} for b, vs_ in out.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
