"""Prompt-text features for the learned router, and a pure-Python/NumPy scorer that needs no scikit-learn.

Features (two blocks, concatenated): word 1–2-grams and ``char_wb`` 3–5-grams of the lower-cased prompt, hashed by
scikit-learn's :class:`~sklearn.feature_extraction.text.HashingVectorizer` (signed 32-bit MurmurHash3, seed 0,
index ``|h| mod n_features``, no alternate sign) into raw counts. :class:`TextFeatures` then keeps the columns seen in
at least ``min_df`` training prompts, applies sublinear tf ``1 + ln(count)``, multiplies by the smooth idf
``ln((1 + n) / (1 + df)) + 1`` (scikit-learn's formula) and L2-normalises each block. Hashing is stateless, so
counts can be computed once and cached (:class:`CountCache`) without looking at any label; the idf and kept columns
come from the training prompts only.

:func:`analyze` and :func:`murmurhash3_32` re-implement scikit-learn's analyzers and hash in plain Python so that a
policy loaded from JSON scores prompts without scikit-learn (``tests/test_policies.py`` checks equality).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["BLOCKS", "SHAPE_SCALE", "CountCache", "TextFeatures", "analyze", "murmurhash3_32", "pure_features",
           "raw_counts", "shape_features"]

BLOCKS: tuple[dict[str, Any], ...] = (
    {"analyzer": "word", "ngram_range": (1, 2), "n_features": 2**20},
    {"analyzer": "char_wb", "ngram_range": (3, 5), "n_features": 2**20},
)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's default token_pattern
_WHITE = re.compile(r"\s\s+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SENTENCE = re.compile(r"[.?!]\s")
_MEMO_MAX = 500_000  # entries per block of a pure scorer's n-gram memo
SHAPE_SCALE = 0.5  # weight of the standardised shape block next to the unit-norm n-gram blocks


def shape_features(texts: Sequence[str]) -> np.ndarray:
    """Shape of each prompt, shape (n, 4): ``ln(1 + x)`` of its length in characters, count of numbers, count of
    sentence ends (``[.?!]`` then white space) and count of line breaks."""
    return np.array([[math.log1p(len(t)), math.log1p(len(_NUMBER.findall(t))), math.log1p(len(_SENTENCE.findall(t))),
                      math.log1p(t.count("\n"))] for t in texts], dtype=float).reshape(len(texts), 4)


def _hashers(blocks: Sequence[dict[str, Any]]) -> list[Any]:
    from sklearn.feature_extraction.text import HashingVectorizer

    return [HashingVectorizer(analyzer=b["analyzer"], ngram_range=tuple(b["ngram_range"]), n_features=b["n_features"],
                              alternate_sign=False, norm=None, lowercase=True) for b in blocks]


def raw_counts(texts: Sequence[str], blocks: Sequence[dict[str, Any]] = BLOCKS) -> list[Any]:
    """Hashed n-gram counts, one CSR matrix (n_texts × n_features) per block."""
    return [h.transform(list(texts)).tocsr() for h in _hashers(blocks)]


class CountCache:
    """Hashed counts of a fixed list of texts, computed once (stateless hashing: no label, no fitting).

    ``CountCache(texts).rows(texts2)`` returns the blocks' rows for ``texts2``, hashing the texts it has not seen.
    Pass one to :func:`llmlab.routing.fit_policy` / ``Policy.scores`` to reuse counts across many train/test splits.
    """

    def __init__(self, texts: Sequence[str] = (), blocks: Sequence[dict[str, Any]] = BLOCKS) -> None:
        self.blocks = [dict(b) for b in blocks]
        uniq = list(dict.fromkeys(texts))
        self._index = {t: i for i, t in enumerate(uniq)}
        self._mats = raw_counts(uniq, self.blocks) if uniq else None

    @classmethod
    def merge(cls, *caches: CountCache) -> CountCache:
        """One cache holding every text of ``caches`` (same blocks), without re-hashing."""
        from scipy.sparse import vstack

        out = cls((), caches[0].blocks if caches else BLOCKS)
        for c in caches:
            if c._mats is None:
                continue
            new = [(t, i) for t, i in c._index.items() if t not in out._index]
            base = len(out._index)
            out._index.update({t: base + k for k, (t, _) in enumerate(new)})
            add = [m[np.asarray([i for _, i in new], dtype=np.int64)] for m in c._mats]
            out._mats = add if out._mats is None else [vstack([m, a]).tocsr() for m, a in zip(out._mats, add, strict=True)]
        return out

    def rows(self, texts: Sequence[str]) -> list[Any]:
        from scipy.sparse import vstack

        texts = list(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self._index]
        if new:
            add = raw_counts(new, self.blocks)
            base = len(self._index)
            self._index.update({t: base + i for i, t in enumerate(new)})
            self._mats = add if self._mats is None else [vstack([m, a]).tocsr() for m, a in zip(self._mats, add, strict=True)]
        idx = np.fromiter((self._index[t] for t in texts), dtype=np.int64, count=len(texts))
        return [m[idx] for m in self._mats]  # type: ignore[union-attr]


class TextFeatures:
    """Fitted feature map: kept hashed columns, idf, sublinear tf, per-block L2 norm; then the 4
    :func:`shape_features`, standardised with the training mean / standard deviation and scaled by
    :data:`SHAPE_SCALE`.

    ``fit(counts, texts)`` on training counts (from :func:`raw_counts` / :class:`CountCache`) and their texts;
    ``transform(counts, texts)`` gives a CSR matrix of shape (n, sum of kept columns + 4). ``columns[b]`` (sorted
    hashed indices), ``idf[b]``, ``shape_mean`` and ``shape_std`` are what the JSON model file stores.
    """

    def __init__(self, blocks: Sequence[dict[str, Any]] = BLOCKS, min_df: int = 2) -> None:
        self.blocks = [dict(b) for b in blocks]
        self.min_df = min_df
        self.columns: list[np.ndarray] = []
        self.idf: list[np.ndarray] = []
        self.shape_mean = np.zeros(4)
        self.shape_std = np.ones(4)

    def fit(self, counts: Sequence[Any], texts: Sequence[str]) -> TextFeatures:
        sh = shape_features(texts)
        self.shape_mean, self.shape_std = sh.mean(axis=0), sh.std(axis=0) + 1e-9
        self.columns, self.idf = [], []
        for m in counts:
            n = m.shape[0]
            df = np.bincount(m.indices, minlength=m.shape[1])  # CSR rows hold each column at most once
            keep = np.flatnonzero(df >= self.min_df)
            self.columns.append(keep)
            self.idf.append(np.log((1 + n) / (1 + df[keep])) + 1.0)
        return self

    def transform(self, counts: Sequence[Any], texts: Sequence[str]) -> Any:
        from scipy.sparse import csr_matrix, diags, hstack
        from sklearn.preprocessing import normalize

        parts = []
        for m, cols, idf in zip(counts, self.columns, self.idf, strict=True):
            x = m[:, cols].astype(float)
            x.data = 1.0 + np.log(x.data)
            parts.append(normalize(x @ diags(idf), norm="l2"))
        parts.append(csr_matrix((shape_features(texts) - self.shape_mean) / self.shape_std * SHAPE_SCALE))
        return hstack(parts).tocsr()


def murmurhash3_32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86 32-bit of ``data``, as a signed int (scikit-learn's ``murmurhash3_32(..., positive=False)``)."""
    c1, c2, mask = 0xCC9E2D51, 0x1B873593, 0xFFFFFFFF
    h = seed & mask
    n = len(data)
    nblocks = n // 4
    for i in range(nblocks):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
        h = ((h << 13) | (h >> 19)) & mask
        h = (h * 5 + 0xE6546B64) & mask
    tail = data[4 * nblocks:]
    k = 0
    if len(tail) >= 3:
        k ^= tail[2] << 16
    if len(tail) >= 2:
        k ^= tail[1] << 8
    if len(tail) >= 1:
        k ^= tail[0]
        k = (k * c1) & mask
        k = ((k << 15) | (k >> 17)) & mask
        k = (k * c2) & mask
        h ^= k
    h ^= n
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & mask
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & mask
    h ^= h >> 16
    return h - (1 << 32) if h & 0x80000000 else h


def analyze(text: str, analyzer: str, ngram_range: Sequence[int]) -> list[str]:
    """scikit-learn's ``word`` / ``char_wb`` analyzers (lowercase, default token pattern, no stop words)."""
    lo, hi = int(ngram_range[0]), int(ngram_range[1])
    text = text.lower()
    out: list[str] = []
    if analyzer == "word":
        toks = _TOKEN.findall(text)
        if lo == 1:
            out.extend(toks)
            lo = 2
        for n in range(lo, min(hi + 1, len(toks) + 1)):
            out.extend(" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1))
        return out
    if analyzer == "char_wb":
        for w in _WHITE.sub(" ", text).split():
            w = f" {w} "
            lw = len(w)
            for n in range(lo, hi + 1):
                if lw <= n:  # the padded word itself, and no longer n-grams
                    out.append(w)
                    break
                out.extend([w[i:i + n] for i in range(lw - n + 1)])
        return out
    raise ValueError(f"unknown analyzer {analyzer!r}")


def pure_features(text: str, blocks: Sequence[dict[str, Any]], columns: Sequence[dict[int, int]],
                  idf: Sequence[Sequence[float]], shape_mean: Sequence[float], shape_std: Sequence[float],
                  sublinear_tf: bool = True, memo: Sequence[dict[str, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One prompt's feature vector without scikit-learn: ``(positions, values)`` in the concatenated kept-column
    space (then the 4 shape features). ``columns[b]`` maps a hashed index to its position within block ``b``.
    ``memo``: one dict per block, kept by the caller across calls (n-gram -> kept position or -1; speed only,
    cleared when it exceeds 500,000 entries)."""
    pos_all, val_all, offset = [], [], 0
    memos = memo if memo is not None else [{} for _ in blocks]
    for b, cols, w, seen in zip(blocks, columns, idf, memos, strict=True):
        nf = int(b["n_features"])
        if len(seen) > _MEMO_MAX:  # bounded: a server sees an open-ended stream of n-grams
            seen.clear()
        counts: dict[int, int] = {}
        get, cget = seen.get, counts.get
        for g in analyze(text, b["analyzer"], b["ngram_range"]):
            k = get(g)
            if k is None:
                k = seen[g] = cols.get(abs(murmurhash3_32(g.encode("utf-8"))) % nf, -1)
            if k >= 0:
                counts[k] = cget(k, 0) + 1
        pos = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
        val = np.fromiter(counts.values(), dtype=float, count=len(counts))
        if len(pos):
            val = (1.0 + np.log(val)) if sublinear_tf else val
            val = val * np.asarray(w, dtype=float)[pos]
            norm = float(np.sqrt((val * val).sum()))
            val = val / norm if norm > 0 else val
        pos_all.append(pos + offset)
        val_all.append(val)
        offset += len(cols)
    pos_all.append(np.arange(offset, offset + 4))
    val_all.append((shape_features([text])[0] - np.asarray(shape_mean)) / np.asarray(shape_std) * SHAPE_SCALE)
    return np.concatenate(pos_all), np.concatenate(val_all)
