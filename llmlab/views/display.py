"""Static, escaped displays of model answers: cards (one per model) and grids (prompts × models).

Model output is untrusted (DESIGN.md, decision 6): JupyterLab runs scripts found in trusted HTML outputs, so
nothing a model says, nor a model id, a prompt, a category or an error message, ever reaches an HTML output
unescaped. Answers are shown as ``html.escape``-d text inside ``<pre>``; the ``markdown`` format renders Markdown
(with mistune, markdown-it-py or Python-Markdown, whichever is installed, raw HTML escaped) and then cleans the
result with nh3 against a small allow-list (no scripts, no styles, no images, no event handlers, no
``javascript:`` links); with no Markdown library it falls back to escaped text.

Every display is a plain mimebundle, ``{"text/plain": ..., "text/html": ...}``, so a notebook executed headless
or exported to HTML still shows it without widgets or JavaScript.

Public helpers, reusable by other surfaces (the widgets):

- :func:`escape`, :func:`pre`: escaping.
- :func:`markdown_to_safe_html`, :func:`answer_html`, :func:`answer_text`: one answer in a format
  (``text``, ``markdown``, ``json``, ``code``).
- :class:`Card`, :func:`cards_from_rows`, :func:`cards_bundle`: one card per model (and sample).
- :func:`grid_bundle`: a compact grid of a multi-prompt run plus a summary line per model.
- :func:`plan_bundle`, :func:`text_bundle`, :func:`frame_bundle`, :class:`Rendered`.
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FORMATS",
    "SAFE_ATTRIBUTES",
    "SAFE_TAGS",
    "SAFE_URL_SCHEMES",
    "Card",
    "Rendered",
    "answer_html",
    "answer_text",
    "cards_bundle",
    "cards_from_rows",
    "escape",
    "extract_code",
    "fmt_ms",
    "fmt_usd",
    "frame_bundle",
    "grid_bundle",
    "markdown_to_safe_html",
    "model_summary_lines",
    "plan_bundle",
    "pre",
    "text_bundle",
]

log = logging.getLogger(__name__)

FORMATS = ("text", "markdown", "json", "code")

#: Tags and attributes the ``markdown`` format may keep after rendering (checked by nh3). No ``img`` (an image
#: URL in model output would make the notebook fetch it), no ``style``, no ``script``, no event handlers.
SAFE_TAGS = frozenset({
    "a", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol",
    "p", "pre", "s", "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
})
SAFE_ATTRIBUTES: dict[str, set[str]] = {"a": {"href", "title"}, "td": {"align"}, "th": {"align"}, "code": {"class"}}
SAFE_URL_SCHEMES = frozenset({"http", "https", "mailto"})

_CSS = {
    "grid": "display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:8px;margin:4px 0",
    "card": "border:1px solid #d0d7de;border-radius:6px;padding:6px 10px;min-width:0;overflow:auto",
    "card_error": "border:1px solid #cf222e;border-radius:6px;padding:6px 10px;min-width:0;overflow:auto",
    "head": "display:flex;justify-content:space-between;gap:8px;align-items:baseline",
    "meta": "font-size:85%;color:#57606a",
    "pre": "white-space:pre-wrap;word-break:break-word;margin:6px 0;font-size:90%",
    "err": "color:#cf222e;white-space:pre-wrap;word-break:break-word;margin:6px 0;font-size:90%",
    "note": "font-size:85%;color:#57606a;margin:2px 0",
    "table": "border-collapse:collapse;font-size:85%",
    "cell": "border:1px solid #d0d7de;padding:3px 6px;vertical-align:top;text-align:left;max-width:360px",
}


# -- escaping --------------------------------------------------------------------------------------------------
def escape(value: Any) -> str:
    """``html.escape`` of ``str(value)`` with quotes escaped too (safe in text and in attribute values).
    ``None`` and NaN give the empty string."""
    if value is None or _isnan(value):
        return ""
    return html.escape(str(value), quote=True)


def pre(text: Any, *, style: str | None = None) -> str:
    """``text`` escaped inside ``<pre>`` (whitespace kept, long lines wrapped)."""
    return f'<pre style="{style or _CSS["pre"]}">{escape(text)}</pre>'


def _isnan(v: Any) -> bool:
    try:
        return isinstance(v, float) and math.isnan(v)
    except Exception:  # noqa: BLE001
        return False


def _markdown_renderer() -> Any:
    """A callable ``str -> html`` from the first installed Markdown library, raw HTML escaped; None if none."""
    try:
        import mistune

        return mistune.create_markdown(escape=True, plugins=["strikethrough", "table"])
    except Exception:  # noqa: BLE001 - missing or incompatible: try the next one
        pass
    try:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False}).enable("table")
        return md.render
    except Exception:  # noqa: BLE001
        pass
    try:
        import markdown

        def render(text: str) -> str:
            return markdown.markdown(html.escape(text, quote=False), extensions=["tables", "fenced_code"])

        return render
    except Exception:  # noqa: BLE001
        return None


_MD: list[Any] = []


def markdown_to_safe_html(text: str) -> str:
    """Render ``text`` as Markdown and sanitize the HTML with nh3 (allow-list :data:`SAFE_TAGS`).

    Raw HTML in ``text`` is escaped by the renderer and anything the allow-list does not name is removed by nh3
    (so ``<script>`` never survives either way). Falls back to :func:`pre` when no Markdown library is installed.
    """
    import nh3

    if not _MD:
        _MD.append(_markdown_renderer())
    render = _MD[0]
    if render is None:
        return pre(text)
    try:
        rendered = render(text or "")
    except Exception:  # noqa: BLE001 - a renderer bug must not show raw text unescaped
        log.debug("markdown rendering failed; showing escaped text", exc_info=True)
        return pre(text)
    return nh3.clean(
        str(rendered), tags=set(SAFE_TAGS), attributes={k: set(v) for k, v in SAFE_ATTRIBUTES.items()},
        url_schemes=set(SAFE_URL_SCHEMES), link_rel="noopener noreferrer nofollow", strip_comments=True,
    )


_FENCE = re.compile(r"```[ \t]*([\w+.#-]*)[^\n]*\n(.*?)```", re.S)


def extract_code(text: str) -> str:
    """The fenced code blocks of ``text`` (```lang ... ```), joined by blank lines; ``text`` if there are none."""
    blocks = [m.group(2).rstrip("\n") for m in _FENCE.finditer(text or "")]
    return "\n\n".join(blocks) if blocks else (text or "")


def _as_json(text: str) -> tuple[str, bool]:
    """Pretty-printed JSON of ``text`` (or of its first fenced block), and whether it parsed."""
    for candidate in (text, extract_code(text)):
        try:
            return json.dumps(json.loads(candidate), indent=2, ensure_ascii=False), True
        except (TypeError, ValueError):
            continue
    return text, False


def answer_text(text: str | None, fmt: str = "text") -> str:
    """The plain-text form of one answer in ``fmt`` (``json``: pretty-printed when it parses; ``code``: the
    fenced code blocks only; otherwise the text as is)."""
    text = text or ""
    if fmt == "json":
        return _as_json(text)[0]
    if fmt == "code":
        return extract_code(text)
    return text


def answer_html(text: str | None, fmt: str = "text") -> str:
    """The HTML form of one answer: escaped ``<pre>`` (``text``, ``code``, ``json``; ``json`` adds a note when the
    answer is not valid JSON) or sanitized Markdown (``markdown``). Never raw model HTML.

    Raises ValueError for an unknown format.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    text = text or ""
    if fmt == "markdown":
        return f'<div class="llmlab-md">{markdown_to_safe_html(text)}</div>'
    if fmt == "json":
        shown, ok = _as_json(text)
        note = "" if ok else f'<div style="{_CSS["note"]}">(not valid JSON: shown as text)</div>'
        return note + pre(shown)
    if fmt == "code":
        return f'<pre style="{_CSS["pre"]}"><code>{escape(extract_code(text))}</code></pre>'
    return pre(text)


# -- numbers -----------------------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    if v is None or _isnan(v):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt_ms(v: Any) -> str:
    """Milliseconds for display: ``812 ms``, ``1.25 s``; ``–`` when unknown."""
    x = _num(v)
    if x is None:
        return "–"
    return f"{x:.0f} ms" if x < 1000 else f"{x / 1000:.2f} s"


def fmt_usd(v: Any) -> str:
    """US dollars for display with enough digits for tiny per-call costs: ``$0.000123``; ``free`` for exactly 0
    (a free model, or a cache hit); ``price unknown`` for NULL."""
    x = _num(v)
    if x is None:
        return "price unknown"
    if x == 0:
        return "free"
    return f"${x:.6f}" if x < 0.01 else f"${x:.4f}"


# -- cards -----------------------------------------------------------------------------------------------------
@dataclass
class Card:
    """One answer box: one model (and sample) of one prompt.

    ``status`` is ``pending`` (not answered yet), ``streaming`` (partial text so far), ``ok`` or ``error``.
    Times in milliseconds, cost in USD; ``None`` when unknown.
    """

    model: str
    status: str = "pending"
    text: str | None = None
    sample_index: int = 0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    cached: bool = False
    error_type: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    answered_by: str | None = None
    quality: float | None = None

    @property
    def title(self) -> str:
        return self.model if self.sample_index == 0 else f"{self.model} #{self.sample_index + 1}"

    def metrics(self) -> str:
        """``latency 812 ms · TTFT 120 ms · tokens 34→56 · $0.000123 · cache hit`` (what is known)."""
        if self.status in ("pending", "streaming"):
            return "streaming…" if self.status == "streaming" else "waiting…"
        parts = [f"latency {fmt_ms(self.latency_ms)}", f"TTFT {fmt_ms(self.ttft_ms)}"]
        if self.input_tokens is not None or self.output_tokens is not None:
            it = "?" if _num(self.input_tokens) is None else int(self.input_tokens)  # type: ignore[arg-type]
            ot = "?" if _num(self.output_tokens) is None else int(self.output_tokens)  # type: ignore[arg-type]
            parts.append(f"tokens {it}→{ot}")
        if self.status == "ok":
            parts.append(fmt_usd(self.cost_usd))
        if self.cached:
            parts.append("cache hit (no call made)")
        if self.answered_by and self.answered_by != self.model:
            parts.append(f"answered by {self.answered_by}")
        q = _num(self.quality)
        if q is not None:
            parts.append(f"quality {q:.2f}")
        return " · ".join(parts)

    def error_line(self) -> str:
        if self.status != "error":
            return ""
        head = self.error_type or "error"
        if self.http_status is not None and not _isnan(self.http_status):
            head += f" (HTTP {int(self.http_status)})"
        return head + (f": {self.error_message}" if self.error_message else "")


def _clean(v: Any) -> Any:
    return None if v is None or _isnan(v) else v


def _answer_of(r: Mapping[str, Any]) -> Any:
    """The answer text of a result row, with the tool calls it made as ``→ name({arguments})`` lines (plain
    text: every surface escapes it like any answer)."""
    text = _clean(r.get("response"))
    raw = _clean(r.get("tool_calls"))
    if not raw:
        return text
    try:
        calls = json.loads(raw) if isinstance(raw, str) else list(raw)
    except (TypeError, ValueError):
        return text
    lines = [f"→ {c.get('name')}({json.dumps(c.get('arguments'), ensure_ascii=False)})" for c in calls
             if isinstance(c, Mapping)]
    return "\n".join([*([text] if text else []), *lines]) or text


def cards_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Card]:
    """Cards from result rows (dicts or DataFrame records with the ``calls`` columns: ``model, status, response,
    latency_ms, ttft_ms, input_tokens, output_tokens, cost_usd, cached, error_type, error_message, http_status,
    sample_index``, optionally ``answered_by, quality, tool_calls``: the calls are shown after the answer), in the
    order given."""
    cards = []
    for r in rows:
        cards.append(Card(
            model=str(r.get("model")), status=str(r.get("status") or "error"), text=_answer_of(r),
            sample_index=int(_clean(r.get("sample_index")) or 0), latency_ms=_clean(r.get("latency_ms")),
            ttft_ms=_clean(r.get("ttft_ms")), input_tokens=_clean(r.get("input_tokens")),
            output_tokens=_clean(r.get("output_tokens")), cost_usd=_clean(r.get("cost_usd")),
            cached=bool(_clean(r.get("cached")) or False), error_type=_clean(r.get("error_type")),
            error_message=_clean(r.get("error_message")), http_status=_clean(r.get("http_status")),
            answered_by=_clean(r.get("answered_by")), quality=_clean(r.get("quality")),
        ))
    return cards


def _card_html(card: Card, fmt: str) -> str:
    style = _CSS["card_error"] if card.status == "error" else _CSS["card"]
    badge = {"ok": "✓", "error": "✗", "pending": "…", "streaming": "…"}.get(card.status, "")
    body = ""
    if card.status == "error":
        body += f'<pre style="{_CSS["err"]}">{escape(card.error_line())}</pre>'
        if card.text:
            body += pre(card.text)
    elif card.status == "streaming":
        body = pre(card.text or "")
    elif card.status == "ok":
        body = answer_html(card.text, fmt)
    return (
        f'<div class="llmlab-card" style="{style}">'
        f'<div style="{_CSS["head"]}"><b>{escape(card.title)}</b><span>{badge}</span></div>'
        f'<div style="{_CSS["meta"]}">{escape(card.metrics())}</div>{body}</div>'
    )


def _card_text(card: Card, fmt: str) -> str:
    head = f"── {card.title} ── {card.status} · {card.metrics()}"
    lines = [head]
    if card.status == "error":
        lines.append("  " + card.error_line())
    if card.status in ("ok", "streaming") or (card.status == "error" and card.text):
        body = answer_text(card.text, fmt if card.status == "ok" else "text")
        lines += ["  " + line for line in body.splitlines()] or [""]
    return "\n".join(lines)


def cards_bundle(cards: Sequence[Card], *, fmt: str = "text", header: str | None = None,
                 footer: str | None = None) -> dict[str, str]:
    """One card per model side by side: ``{"text/plain", "text/html"}``. ``header``/``footer`` are plain text
    lines (escaped in HTML). Raises ValueError for an unknown ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    text_parts = [header] if header else []
    text_parts += [_card_text(c, fmt) for c in cards]
    if footer:
        text_parts.append(footer)
    html_parts = ['<div class="llmlab-output">']
    if header:
        html_parts.append(f'<div style="{_CSS["note"]}">{escape(header)}</div>')
    html_parts.append(f'<div class="llmlab-cards" style="{_CSS["grid"]}">')
    html_parts += [_card_html(c, fmt) for c in cards]
    html_parts.append("</div>")
    if footer:
        html_parts.append(f'<div style="{_CSS["note"]}">{escape(footer)}</div>')
    html_parts.append("</div>")
    return {"text/plain": "\n".join(text_parts), "text/html": "".join(html_parts)}


# -- grids -------------------------------------------------------------------------------------------------
def _short(text: Any, n: int) -> str:
    s = "" if text is None or _isnan(text) else " ".join(str(text).split())
    return s if len(s) <= n else s[: max(1, n - 1)] + "…"


def model_summary_lines(results: Any) -> list[str]:
    """One line per model of a results frame: calls, ok, errors, cache hits, mean quality, median latency, cost.

    Figures: quality is the mean of ``quality`` over calls that have one (0..1), latency the median
    ``latency_ms`` of ok calls, cost the sum of ``cost_usd`` of calls actually made (cache hits cost nothing
    again); "price unknown" when an ok call has no price.
    """
    lines = []
    if results is None or len(results) == 0:
        return lines
    for model, g in results.groupby("model", sort=False):
        ok = g[g["status"] == "ok"]
        n_err = int((g["status"] != "ok").sum())
        cached = g["cached"].fillna(False).astype(bool) if "cached" in g else None
        n_cached = int(cached.sum()) if cached is not None else 0
        parts = [f"{len(g)} calls", f"{len(ok)} ok", f"{n_err} errors"]
        if n_cached:
            parts.append(f"{n_cached} from cache")
        if "quality" in g and g["quality"].notna().any():
            q = g["quality"].dropna()
            parts.append(f"quality {q.mean():.2f} (n={len(q)})")
        lat = ok["latency_ms"].dropna() if "latency_ms" in ok else []
        if len(lat):
            parts.append(f"p50 latency {fmt_ms(float(lat.median()))}")
        made = ok if cached is None else ok[~cached.loc[ok.index]]
        costs = made["cost_usd"] if "cost_usd" in made else None
        if costs is not None and len(made):
            parts.append("cost price unknown" if costs.isna().any() else f"cost {fmt_usd(float(costs.sum()))}")
        elif len(ok):
            parts.append("cost $0 (all cached)")
        lines.append(f"{model}: " + ", ".join(parts))
    return lines


def grid_bundle(results: Any, *, fmt: str = "text", max_rows: int = 50, max_chars: int = 160,
                header: str | None = None, footer: str | None = None) -> dict[str, str]:
    """A compact grid of a multi-prompt run: one row per prompt (category, prompt), one column per model, each
    cell the (shortened, escaped) answer with ✓/✗ from its quality or the error type; then a summary line per
    model (:func:`model_summary_lines`). Shows at most ``max_rows`` prompts (says how many more).

    ``results``: a DataFrame with the ``calls`` columns (``prompt_id, category, prompt, model, sample_index,
    status, response, error_type, quality``...). Returns ``{"text/plain", "text/html"}``.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    models = list(dict.fromkeys(results["model"].tolist())) if len(results) else []
    prompt_ids = list(dict.fromkeys(results["prompt_id"].tolist())) if len(results) else []
    shown_ids = prompt_ids[:max_rows]
    by_prompt = {pid: g for pid, g in results.groupby("prompt_id", sort=False)} if len(results) else {}

    def cell(g: Any, model: str) -> tuple[str, str]:
        rows = g[g["model"] == model].sort_values("sample_index") if "sample_index" in g else g[g["model"] == model]
        texts, titles = [], []
        for r in rows.to_dict("records"):
            if r.get("status") == "ok":
                q = _num(r.get("quality"))
                mark = "" if q is None else ("✓ " if q >= 0.5 else "✗ ")
                body = answer_text(_answer_of(r), fmt)
                texts.append(mark + _short(body, max_chars))
                titles.append(body)
            else:
                err = f"[{_clean(r.get('error_type')) or 'error'}]"
                texts.append(err)
                titles.append(f"{err} {_clean(r.get('error_message')) or ''}")
        return " | ".join(texts), "\n---\n".join(titles)[:2000]

    # HTML
    th = "".join(f'<th style="{_CSS["cell"]}">{escape(h)}</th>' for h in ["#", "category", "prompt", *models])
    body = []
    text_rows = []
    for i, pid in enumerate(shown_ids, start=1):
        g = by_prompt[pid]
        first = g.iloc[0]
        cat = _clean(first.get("category")) if "category" in g else None
        prompt = _clean(first.get("prompt")) if "prompt" in g else pid
        tds = [f'<td style="{_CSS["cell"]}">{i}</td>', f'<td style="{_CSS["cell"]}">{escape(cat)}</td>',
               f'<td style="{_CSS["cell"]}" title="{escape(_short(prompt, 2000))}">{escape(_short(prompt, 80))}</td>']
        trow = [str(i), _short(cat, 16), _short(prompt, 40)]
        for m in models:
            shown, title = cell(g, m)
            tds.append(f'<td style="{_CSS["cell"]}" title="{escape(title)}">{escape(shown)}</td>')
            trow.append(_short(shown, 40))
        body.append("<tr>" + "".join(tds) + "</tr>")
        text_rows.append(trow)
    more = len(prompt_ids) - len(shown_ids)
    summary = model_summary_lines(results)
    notes = [f"{len(prompt_ids)} prompts × {len(models)} models"]
    if more > 0:
        notes.append(f"showing the first {len(shown_ids)} prompts ({more} more: see the result's .results frame)")

    html_parts = ['<div class="llmlab-output">']
    if header:
        html_parts.append(f'<div style="{_CSS["note"]}">{escape(header)}</div>')
    html_parts.append(f'<table class="llmlab-grid" style="{_CSS["table"]}"><thead><tr>{th}</tr></thead>'
                      f'<tbody>{"".join(body)}</tbody></table>')
    html_parts.append(f'<div style="{_CSS["note"]}">{escape("; ".join(notes))}</div>')
    html_parts.append("<ul style=\"margin:2px 0;font-size:85%\">" + "".join(f"<li>{escape(s)}</li>" for s in summary)
                      + "</ul>")
    if footer:
        html_parts.append(f'<div style="{_CSS["note"]}">{escape(footer)}</div>')
    html_parts.append("</div>")

    headers = ["#", "category", "prompt", *models]
    widths = [max(len(str(x)) for x in [h, *(r[j] for r in text_rows)]) for j, h in enumerate(headers)]
    fmt_row = lambda r: "  ".join(str(x).ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    text_lines = [header] if header else []
    text_lines += [fmt_row(headers)] + [fmt_row(r) for r in text_rows]
    text_lines.append("; ".join(notes))
    text_lines += summary
    if footer:
        text_lines.append(footer)
    return {"text/plain": "\n".join(text_lines), "text/html": "".join(html_parts)}


# -- other views -----------------------------------------------------------------------------------------------
def text_bundle(text: str, *, title: str | None = None) -> dict[str, str]:
    """Plain text as a bundle (escaped ``<pre>`` in HTML)."""
    head = f"<b>{escape(title)}</b>" if title else ""
    return {"text/plain": (title + "\n" if title else "") + text, "text/html": head + pre(text)}


def frame_bundle(frame: Any, *, title: str | None = None, max_rows: int = 200) -> dict[str, str]:
    """A DataFrame as a bundle: ``to_string`` and pandas' escaped HTML table (``escape=True``)."""
    shown = frame.head(max_rows)
    text = shown.to_string(index=False)
    table = shown.to_html(index=False, escape=True, border=0, na_rep="")
    head = f'<div style="{_CSS["note"]}"><b>{escape(title)}</b></div>' if title else ""
    return {"text/plain": (title + "\n" if title else "") + text, "text/html": head + table}


def plan_bundle(plan: Any, *, header: str | None = None) -> dict[str, str]:
    """A :class:`llmlab.runner.Plan` (what a run would do: calls, models, cache hits, estimated cost) as a bundle."""
    text = repr(plan)
    frame = plan.to_frame()
    head = header or "dry run: nothing was called"
    table = frame.to_html(index=False, escape=True, border=0, na_rep="unknown")
    first = text.splitlines()[0] if text else ""
    return {
        "text/plain": f"{head}\n{text}",
        "text/html": (f'<div class="llmlab-output"><div style="{_CSS["note"]}">{escape(head)}</div>'
                      f"<div>{escape(first)}</div>{table}</div>"),
    }


class Rendered:
    """A mimebundle that displays itself (returned by the ``%llm`` line magics)."""

    def __init__(self, bundle: Mapping[str, str]) -> None:
        self.bundle = dict(bundle)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return dict(self.bundle)

    def __repr__(self) -> str:
        return self.bundle.get("text/plain", "")
