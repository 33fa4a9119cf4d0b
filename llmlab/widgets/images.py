"""Thumbnails of a prompt's images in the comparison view: ``ipywidgets.Image`` widgets (bytes, never HTML).

The store keeps an image part's path and SHA-256, not its bytes (:mod:`llmlab.prompts.conversations`). A thumbnail
is read from that path when it still holds the same bytes; otherwise the view says the image is missing or changed
instead of showing something else.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ipywidgets as W

__all__ = [
    "image_parts",
    "thumbnails",
]

_MAX_BYTES = 8_000_000


def image_parts(rec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``llmlab_image`` records (``path, sha256, bytes, mime``) of a call's prompt messages, in order."""
    raw = rec.get("messages")
    if not raw:
        return []
    try:
        messages = json.loads(raw) if isinstance(raw, str) else raw
    except (TypeError, ValueError):
        return []
    out = []
    for m in messages or []:
        content = m.get("content") if isinstance(m, Mapping) else None
        if isinstance(content, list):
            out += [dict(p["llmlab_image"]) for p in content
                    if isinstance(p, Mapping) and isinstance(p.get("llmlab_image"), Mapping)]
    return out


def thumbnails(rec: Mapping[str, Any], *, width_px: int = 140) -> list[W.Widget]:
    """One widget per image of the call's prompt: an ``Image`` thumbnail when the file still holds the recorded
    bytes, else a ``Label`` saying it is missing or changed (escaped by the widget: plain text)."""
    widgets: list[W.Widget] = []
    for image in image_parts(rec):
        path = Path(str(image.get("path") or ""))
        label = path.name or "image"
        try:
            data = path.read_bytes() if path.is_file() and path.stat().st_size <= _MAX_BYTES else None
        except OSError:
            data = None
        if data is None:
            widgets.append(W.Label(f"{label}: not found (the store keeps its path and hash, not its bytes)"))
            continue
        if hashlib.sha256(data).hexdigest() != image.get("sha256"):
            widgets.append(W.Label(f"{label}: changed since the run (hash differs): not shown"))
            continue
        fmt = str(image.get("mime") or "image/png").split("/")[-1]
        img = W.Image(value=data, format=fmt, layout=W.Layout(width=f"{width_px}px", height="auto"))
        img.add_class("llmlab-thumbnail")
        widgets.append(W.VBox([img, W.Label(label)]))
    return widgets
