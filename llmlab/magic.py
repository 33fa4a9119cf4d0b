"""The ``%%llm`` cell magic and the ``%llm`` line magics: ask many models from one cell, see them side by side.

Load it with ``%load_ext llmlab`` (loading twice is harmless; loading imports neither LiteLLM, pandas nor
plotly). The full help is the docstring of :meth:`LLMMagics.llm` (``%%llm?`` or ``%llm help``).

How it differs from other notebook LLM magics, on purpose:

- Braces are not ``str.format``: ``{name}`` is filled only when ``name`` is a variable of the user namespace
  (:func:`llmlab.prompts.render`); code, JSON and LaTeX braces stay as written; ``--no-interpolate`` turns
  filling off. The magic line itself is not expanded by IPython (``$x``/``{x}`` there stay literal).
- Model output is never rendered as live HTML or Markdown: answers are escaped text in ``<pre>``, or Markdown
  rendered and then sanitized with nh3 (``-f markdown``). Model ids and error text are escaped too.
- Errors raise (the cell fails): a bad argument, an unknown model or a missing key is an IPython ``UsageError``
  (one line, no traceback), reported before any call is made; the llmlab error behind it (``ModelError``,
  ``MissingKeyError``, ``BudgetError``, ``PromptSetError``...) is its ``__cause__``.
- The calls run on llmlab's background event loop (DESIGN.md, decision 1): it works in plain IPython and in
  ipykernel 7, whether or not the user applied ``nest_asyncio``; the kernel's stop button cancels the calls in
  flight, what completed stays recorded and running the cell again makes only the missing calls (the rest come
  from the cache). Displays are updated only from the cell's own thread (decision 2).
"""

from __future__ import annotations

import logging
import shlex
import time
from collections.abc import Callable, Sequence
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import MagicArgumentParser
from traitlets import Bool, Int, List, Unicode, default

from llmlab.errors import BudgetError, LLMLabError, PromptSetError

log = logging.getLogger(__name__)

__all__ = [
    "LLMMagics",
    "load_ipython_extension",
    "unload_ipython_extension",
]

SUBCOMMANDS = ("models", "alias", "runs", "show", "compare", "route", "sql", "help")


# -- errors ----------------------------------------------------------------------------------------------------
# Every problem is raised as IPython's own ``UsageError`` (exactly that class: IPython shows only its one-line
# message, no traceback, and the cell fails). When it comes from an llmlab error (ModelError, MissingKeyError,
# BudgetError, PromptSetError, RoutingError, a run that does not exist), that error is its ``__cause__``.


def _one_line(exc: BaseException | str) -> str:
    text = str(exc) if not isinstance(exc, str) else exc
    return " ".join(text.split()) or (type(exc).__name__ if not isinstance(exc, str) else "error")


def _usage_error(exc: BaseException) -> UsageError:
    """A one-line UsageError carrying an llmlab error's message (raise it ``from exc``)."""
    return UsageError(_one_line(exc))


_OPTION_FLAGS = {"temperature": "-t/--temperature", "max_tokens": "--max-tokens", "samples": "-n/--samples",
                 "concurrency": "--concurrency", "timeout_s": "--timeout", "budget_usd": "--budget",
                 "system": "-s/--system"}


def _options_error(exc: Exception) -> UsageError:
    """An :class:`~llmlab.errors.OptionsError` (already naming the magic's flags) as a one-line UsageError."""
    return UsageError(_one_line(exc))


# -- argument parsing --------------------------------------------------------------------------------------------
def _cell_parser() -> MagicArgumentParser:
    p = MagicArgumentParser(prog="%%llm", description=None, add_help=False)
    p.add_argument("models", nargs="*", metavar="MODEL",
                   help="LiteLLM model strings (openai/gpt-4o-mini, anthropic/...), sandbox models "
                        "(sandbox/frontier, sandbox/fast, ...) or @aliases (@cheap, @fast, @smart). "
                        "Default: %%config LLMMagics.default_models.")
    p.add_argument("-o", "--output", metavar="NAME",
                   help="store the result (a RunResult; with --dry-run, the Plan) in this variable.")
    p.add_argument("-s", "--system", metavar="TEXT", help="system prompt ({name} filled like the cell).")
    p.add_argument("-t", "--temperature", type=float, metavar="T", help="sampling temperature (0..2).")
    p.add_argument("--max-tokens", type=int, metavar="N", help="maximum output tokens per answer.")
    p.add_argument("-n", "--samples", type=int, metavar="N", help="answers per model and prompt (default 1).")
    p.add_argument("--concurrency", type=int, metavar="N", help="calls in flight at once (default 16).")
    p.add_argument("--timeout", type=float, metavar="SECONDS", help="timeout of one request, seconds.")
    p.add_argument("--budget", type=float, metavar="USD",
                   help="refuse to start when the estimated cost exceeds USD; stop issuing calls once spent.")
    p.add_argument("--no-cache", action="store_true", help="call every model again (ignore earlier answers).")
    p.add_argument("--stream", action="store_true", help="show the answers live as they stream in (Jupyter).")
    p.add_argument("--batch", action="store_true",
                   help="send the calls through the providers' batch APIs (half price, slower; llmlab.resume).")
    p.add_argument("--name", metavar="NAME", help="name of the run (find it again with %%llm show NAME).")
    p.add_argument("--tag", action="append", default=[], metavar="TAG", help="tag the run (repeatable).")
    p.add_argument("-f", "--format", default="text", choices=("text", "markdown", "json", "code"),
                   help="how answers are shown: escaped text (default), sanitized Markdown, pretty JSON, code blocks.")
    p.add_argument("--dry-run", action="store_true",
                   help="show the plan (calls, models, cache hits, estimated cost) and call nothing.")
    p.add_argument("--prompts", metavar="SOURCE",
                   help="the cell is a template filled per row of SOURCE: a DataFrame (or list) variable, a "
                        ".csv/.jsonl path or a bundled prompt-set name (quickstart).")
    p.add_argument("--category", metavar="COLUMN", help="with --prompts: the column holding each row's category.")
    p.add_argument("--chat", action="store_true",
                   help="the cell is a transcript: 'user:' / 'assistant:' / 'system:' lines start the turns.")
    p.add_argument("--no-interpolate", action="store_true",
                   help="send the cell exactly as written (no {name} filling).")
    return p


def _parse(parser: MagicArgumentParser, line: str) -> Any:
    try:
        argv = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"cannot parse the magic line: {exc}") from None
    return parser.parse_intermixed_args(argv)  # MagicArgumentParser raises UsageError on a bad argument


def _strip_silencer(cell: str) -> tuple[str, bool]:
    """Remove a trailing ``;`` from the last non-empty line; return (cell, silenced)."""
    lines = cell.rstrip().splitlines()
    if lines and lines[-1].rstrip().endswith(";"):
        lines[-1] = lines[-1].rstrip()[:-1].rstrip()
        return "\n".join(lines), True
    return cell, False


_HELP = """Ask many models from one cell and see their answers side by side.

Cell magic::

    %%llm [MODEL ...] [options]
    PROMPT (``{name}`` filled from your variables)

    %%llm sandbox/frontier sandbox/fast -o answers
    Summarize {doc} in three bullet points.

    %%llm @cheap sandbox/balanced --prompts questions_df --category topic -t 0 --max-tokens 256 -o run
    Answer concisely: {question}

    %%llm sandbox/frontier sandbox/balanced --chat
    user: My name is {name}.
    assistant: Hello!
    user: What is my name?

- MODELs are LiteLLM model strings, sandbox models or @aliases; with none, ``%config LLMMagics.default_models``.
- ``{name}`` is filled once from the user namespace when ``name`` is a variable; other braces (code, JSON,
  LaTeX) stay as written; ``--no-interpolate`` sends the cell verbatim. With ``--prompts`` the cell is a
  template filled per row (row columns first, then your variables).
  With ``--chat`` the cell is a transcript (``user:`` / ``assistant:`` / ``system:`` lines start the turns,
  :func:`llmlab.prompts.parse_transcript`), sent as one conversation.
- One card per model: the answer (escaped text; never live HTML), latency, TTFT, tokens, cost, cache hit,
  error. With ``--prompts``: a grid of prompts × models and a summary line per model.
- A trailing ``;`` on the last line hides the display (and is not sent). ``-o NAME`` keeps the RunResult
  (``NAME.results`` is a DataFrame; ``NAME.summary()``).
- Unknown models and missing API keys are reported before any call; errors fail the cell.
- The stop button cancels the calls in flight and keeps what completed; run the cell again to make only the
  missing calls (the others come from the cache, unless ``--no-cache``).

Line magics::

    %llm models                        known models, aliases, and which provider key variables are set
    %llm alias NAME MODEL [MODEL ...]  define @NAME
    %llm runs [LIMIT]                  recorded runs, newest first (a DataFrame)
    %llm show [RUN] [-f FORMAT]        the answers of a run (RUN: id, id prefix, name or last)
    %llm compare [RUN]                 the comparison widget (llmlab.compare), else a summary table
    %llm route [RUN] [--export PATH] [--tolerance Q] [--min-quality Q] [--max-p95-ms MS] [--min-n N]
                                       routing table of a scored run; --export writes a LiteLLM config
    %llm sql "SELECT ..."              SQL against the store (tables runs, prompts, scores; view calls): a DataFrame
    %llm help                          this text

Options of the cell magic:
"""


def _sub_parser(prog: str) -> MagicArgumentParser:
    return MagicArgumentParser(prog=f"%llm {prog}", add_help=False)


# -- the live display --------------------------------------------------------------------------------------------
class _View:
    """The cell's display: a live display handle (updated on the cell's thread) or one final display."""

    def __init__(self, *, live: bool, silenced: bool, min_interval_s: float = 0.1) -> None:
        self.live, self.silenced, self.min_interval_s = live and not silenced, silenced, min_interval_s
        self.handle: Any = None
        self.last = 0.0
        self.final_shown = False

    def update(self, bundle: dict[str, str], *, force: bool = False) -> None:
        if not self.live:
            return
        now = time.monotonic()
        if not force and now - self.last < self.min_interval_s:
            return
        self.last = now
        self._show(bundle)

    def _show(self, bundle: dict[str, str]) -> None:
        from IPython.display import display

        if self.handle is None:
            self.handle = display(bundle, raw=True, display_id=True)
        else:
            self.handle.update(bundle, raw=True)

    def final(self, bundle: dict[str, str]) -> None:
        if self.silenced or self.final_shown:
            return
        self.final_shown = True
        if self.handle is not None:
            self.handle.update(bundle, raw=True)
        else:
            from IPython.display import display

            display(bundle, raw=True)


# -- the magics ----------------------------------------------------------------------------------------------
@magics_class
class LLMMagics(Magics):
    """The ``%%llm`` cell magic and ``%llm`` line magics (configurable: ``%config LLMMagics``)."""

    default_models = List(Unicode(), help="Models asked when a %%llm cell names none (LiteLLM model strings or "
                          "@aliases). Default: llmlab.models.default_models() (LLMLAB_MODELS or the sandbox)."
                          ).tag(config=True)
    store_path = Unicode(None, allow_none=True, help="The DuckDB store file (default: LLMLAB_DB or "
                         "~/.local/share/llmlab/llmlab.duckdb).").tag(config=True)
    live_updates = Bool(None, allow_none=True, help="Update the cell's display while the calls run: None (auto) "
                        "does it in a Jupyter kernel only.").tag(config=True)
    max_grid_rows = Int(50, help="Prompts shown in the grid of a --prompts run (the rest stay in the result)."
                        ).tag(config=True)

    @default("default_models")
    def _default_models(self) -> list[str]:
        from llmlab.models import default_models

        return default_models()

    # -- helpers ----------------------------------------------------------------------------------------
    def _store(self) -> Any:
        from llmlab.store import Store

        return Store(self.store_path) if self.store_path else Store()

    def _live(self) -> bool:
        if self.live_updates is not None:
            return bool(self.live_updates)
        return getattr(self.shell, "kernel", None) is not None

    @no_var_expand
    @line_cell_magic
    def llm(self, line: str, cell: str | None = None) -> Any:  # noqa: D401 - the docstring is set below
        if cell is None:
            return self._line(line)
        self._cell(line, cell)
        return None

    # -- cell magic -------------------------------------------------------------------------------------
    def _cell(self, line: str, cell: str) -> None:
        args = _parse(_cell_parser(), line)
        if args.output is not None and not args.output.isidentifier():
            raise UsageError(f"-o/--output: {args.output!r} is not a valid variable name")
        if args.chat and args.prompts:
            raise UsageError("--chat reads the cell as a transcript; it cannot be combined with --prompts")
        if args.category and not args.prompts:
            raise UsageError("--category needs --prompts (it names a column of the prompt rows)")
        cell, silenced = _strip_silencer(cell)
        if not cell.strip():
            raise UsageError("%%llm: the cell has no prompt (write the prompt below the magic line)")
        models = list(args.models) or list(self.default_models)
        if not models:
            raise UsageError("no models: name some (%%llm sandbox/fast @cheap) or set "
                                "%config LLMMagics.default_models = ['sandbox/fast']")

        prompt_set = self._prompt_set(cell, args)
        options = self._options(args)
        from llmlab.runner import check_budget, plan

        store = self._store()
        try:
            the_plan = plan(prompt_set, models, options=options, store=store)
        except LLMLabError as exc:
            raise _usage_error(exc) from exc
        est = the_plan.estimate_cost_usd()

        if args.dry_run:
            from llmlab.views.display import plan_bundle

            head = "dry run: nothing was called"
            if options.budget_usd is not None:
                if est is not None and est > options.budget_usd:
                    head += f"; the estimate exceeds the budget of {_usd(options.budget_usd)}: the run would be refused"
                else:
                    head += f"; within the budget of {_usd(options.budget_usd)}" if est is not None else (
                        "; the cost is unknown (a model has no price): the budget cannot be checked before the run")
            if args.output:
                self.shell.user_ns[args.output] = the_plan
            _View(live=False, silenced=silenced).final(plan_bundle(the_plan, header=head))
            return
        try:
            check_budget(the_plan, option="--budget")
        except BudgetError as budget_error:
            raise _usage_error(budget_error) from budget_error

        name = args.name or ("%%llm " + _short_name(cell))
        self._execute(the_plan, store, name=name, tags=["magic", *args.tag], args=args, silenced=silenced)

    def _prompt_set(self, cell: str, args: Any) -> Any:
        from llmlab.prompts import load_prompts, render, template_variables

        ns = self.shell.user_ns
        text = cell.rstrip()
        system = args.system
        try:
            if args.chat and not args.prompts:
                from llmlab.prompts import parse_transcript

                variables = {} if args.no_interpolate else {n: ns[n] for n in template_variables(text) if n in ns}
                return load_prompts([{"messages": parse_transcript(text), **variables}], system=system, name="cell")
            if not args.prompts:
                if not args.no_interpolate:
                    text = render(text, {n: ns[n] for n in template_variables(text) if n in ns})
                    if system:
                        system = render(system, {n: ns[n] for n in template_variables(system) if n in ns})
                if not text.strip():
                    raise UsageError("the prompt is empty after filling its variables")
                return load_prompts([text], system=system, name="cell")
            source: Any = args.prompts
            if source in ns:
                source = ns[source]
            columns = _source_columns(source)
            if not args.no_interpolate:
                def fill(t: str) -> str:
                    return render(t, {n: ns[n] for n in template_variables(t) if n in ns and n not in columns})

                text = fill(text)
                system = fill(system) if system else system
            return load_prompts(source, template=text, category_column=args.category, system=system)
        except PromptSetError as exc:
            msg = _one_line(exc)
            if args.prompts and args.prompts.isidentifier() and args.prompts not in ns:
                msg += f" (and there is no variable named {args.prompts!r})"
            raise UsageError(msg) from exc

    def _options(self, args: Any) -> Any:
        from llmlab.errors import OptionsError
        from llmlab.runner import options_from

        opts: dict[str, Any] = {}
        for attr, field in (("temperature", "temperature"), ("max_tokens", "max_tokens"), ("samples", "samples"),
                            ("concurrency", "concurrency"), ("timeout", "timeout_s"), ("budget", "budget_usd")):
            v = getattr(args, attr)
            if v is not None:
                opts[field] = v
        if args.no_cache:
            opts["cache"] = False
        if getattr(args, "batch", False):
            opts["mode"] = "batch"
        try:
            return options_from(_OPTION_FLAGS, **opts)
        except OptionsError as exc:
            raise _options_error(exc) from None

    def _execute(self, the_plan: Any, store: Any, *, name: str, tags: Sequence[str], args: Any,
                 silenced: bool) -> None:
        from llmlab import runner
        from llmlab.store import new_id
        from llmlab.views.display import cards_bundle, text_bundle

        run_id = new_id("r")
        rows: list[dict[str, Any]] = []  # appended on llmlab's loop thread; read here (list ops are atomic)
        single = len(the_plan.prompt_set) == 1
        view = _View(live=self._live(), silenced=silenced)
        calls = list(the_plan.calls)

        def live_bundle(stats: Any, partial: dict[str, str]) -> dict[str, str]:
            header = stats.line() if stats is not None else f"llmlab: {len(calls)} calls planned"
            if not single:
                return text_bundle(header)
            done = {r["call_id"]: r for r in list(rows)}
            from llmlab.views.display import Card, cards_from_rows

            cards = []
            for c in calls:
                if c.call_id in done:
                    cards.extend(cards_from_rows([done[c.call_id]]))
                elif c.call_id in partial:
                    cards.append(Card(model=c.spec.name, status="streaming", text=partial[c.call_id],
                                      sample_index=c.sample_index))
                else:
                    cards.append(Card(model=c.spec.name, status="pending", sample_index=c.sample_index))
            return cards_bundle(cards, fmt="text", header=header)

        last_stats: list[Any] = [None]

        def tick(stats: Any, partial: dict[str, str]) -> None:  # called on this (the cell's) thread
            last_stats[0] = stats
            view.update(live_bundle(stats, partial if args.stream else {}))

        view.update(live_bundle(None, {}), force=True)
        try:
            result = runner.execute(
                the_plan, store=store, name=name, tags=list(tags), run_id=run_id, progress=False,
                on_result=rows.append, on_delta=(_ignore_delta if args.stream else None), on_tick=tick,
            )
        except KeyboardInterrupt:
            result = runner.RunResult(run_id, store, last_stats[0], the_plan)
            if args.output:
                self.shell.user_ns[args.output] = result
            try:
                n_ok = sum(1 for r in list(rows) if r.get("status") == "ok")
                note = (f"interrupted: {n_ok} of {len(calls)} calls completed and are recorded (run {run_id}); "
                        "run the cell again to make only the missing calls")
                view.final(self._result_bundle(result, args.format, header=note, output=args.output))
            except Exception:  # noqa: BLE001 - showing what completed must not hide the interrupt
                log.debug("llmlab: could not display the interrupted run", exc_info=True)
            raise
        if args.output:
            self.shell.user_ns[args.output] = result
        stats = result.stats
        header = stats.line() if stats is not None else None
        view.final(self._result_bundle(result, args.format, header=header, output=args.output))

    def _result_bundle(self, result: Any, fmt: str, *, header: str | None = None,
                       output: str | None = None) -> dict[str, str]:
        """Cards (one prompt) or a grid (several prompts) of a run's recorded results."""
        from llmlab.views.display import cards_bundle, cards_from_rows, grid_bundle, text_bundle

        try:
            frame = result.store.results(result.run_id)
        except LLMLabError:
            return text_bundle((header or "") + "\n(no calls were recorded)")
        order = _model_order(result, frame)
        if len(frame):
            frame = frame.assign(_order=frame["model"].map(order)).sort_values(
                ["_order", "sample_index"], kind="stable").drop(columns="_order")
        footer = f"run {result.run_id}" + (f" · stored as {output}" if output else "") + \
            f" · %llm show {result.run_id}"
        n_prompts = frame["prompt_id"].nunique() if len(frame) else 0
        if n_prompts <= 1:
            return cards_bundle(cards_from_rows(frame.to_dict("records")), fmt=fmt, header=header, footer=footer)
        first_pos = {pid: i for i, pid in enumerate(_prompt_order(result, frame))}
        grid = frame.assign(_p=frame["prompt_id"].map(first_pos)).sort_values(["_p"], kind="stable").drop(columns="_p")
        return grid_bundle(grid, fmt=fmt, max_rows=self.max_grid_rows, header=header, footer=footer)

    # -- line magics ------------------------------------------------------------------------------------
    def _line(self, line: str) -> Any:
        text = line.strip()
        if not text:
            raise UsageError(f"%llm needs a subcommand: {', '.join(SUBCOMMANDS)} (%llm help; the cell magic "
                                "is %%llm with the prompt below)")
        sub, _, rest = text.partition(" ")
        rest = rest.strip()
        if sub not in SUBCOMMANDS:
            raise UsageError(f"unknown %llm subcommand {sub!r}: use one of {', '.join(SUBCOMMANDS)} (%llm help)")
        if sub == "sql":
            return self._sql(rest)
        try:
            argv = shlex.split(rest)
        except ValueError as exc:
            raise UsageError(f"cannot parse the magic line: {exc}") from None
        handler: Callable[[list[str]], Any] = getattr(self, f"_cmd_{sub}")
        try:
            return handler(argv)
        except UsageError:
            raise
        except LLMLabError as exc:
            raise _usage_error(exc) from exc

    def _cmd_help(self, argv: list[str]) -> Any:
        from llmlab.views.display import Rendered, text_bundle

        return Rendered(text_bundle(_full_help()))

    def _cmd_models(self, argv: list[str]) -> Any:
        import pandas as pd

        from llmlab.models import SANDBOX_MODELS, aliases, key_status, resolve
        from llmlab.views.display import Rendered, frame_bundle

        if argv:
            raise UsageError("%llm models takes no arguments")
        sandbox = []
        for m in SANDBOX_MODELS:
            spec = resolve(m, check_keys=False)
            sandbox.append({"model": m, "input_usd_per_mtok": spec.input_cost_per_token * 1e6,
                            "output_usd_per_mtok": spec.output_cost_per_token * 1e6, "note": "simulated, local"})
        al = [{"alias": k, "models": ", ".join(v)} for k, v in aliases().items()]
        keys = [{"provider": k["provider"], "key variable": k["env_var"], "set": "yes" if k["set"] else "no"}
                for k in key_status()]
        parts = [
            frame_bundle(pd.DataFrame(sandbox), title="Sandbox models (no key needed; prices simulated)"),
            frame_bundle(pd.DataFrame(al), title="Aliases (%llm alias NAME MODEL ...)"),
            frame_bundle(pd.DataFrame(keys), title="Provider keys (names only; any LiteLLM model string works "
                                                   "once its key variable is set)"),
        ]
        defaults = "Default models of %%llm: " + ", ".join(self.default_models)
        return Rendered({
            "text/plain": "\n\n".join(p["text/plain"] for p in parts) + "\n\n" + defaults,
            "text/html": "".join(p["text/html"] for p in parts) + f"<div>{_esc(defaults)}</div>",
        })

    def _cmd_alias(self, argv: list[str]) -> Any:
        from llmlab.models import aliases, set_alias
        from llmlab.views.display import Rendered, text_bundle

        if len(argv) < 2:
            raise UsageError("usage: %llm alias NAME MODEL [MODEL ...] (e.g. %llm alias cheap sandbox/tiny)")
        name, models = argv[0], argv[1:]
        set_alias(name, *models)
        key = name if name.startswith("@") else "@" + name
        return Rendered(text_bundle(f"{key} → {', '.join(aliases()[key])}"))

    def _cmd_runs(self, argv: list[str]) -> Any:
        p = _sub_parser("runs")
        p.add_argument("limit", nargs="?", type=int, default=20)
        a = p.parse_args(argv)
        return self._store().runs(limit=a.limit)

    def _run_result(self, ref: str | None) -> Any:
        """RUN as a RunResult: a variable holding one (``-o run``), a run id, a unique id prefix, a run name, or
        ``last``. Raises UsageError (cause: the store's RunNotFoundError) when nothing matches."""
        from llmlab.runner import RunResult

        held = self.shell.user_ns.get(ref) if ref and ref.isidentifier() else None
        if held is not None and isinstance(getattr(held, "run_id", None), str) and hasattr(held, "store"):
            return RunResult(held.run_id, held.store)
        store = self._store()
        return RunResult(store.resolve_run(ref), store)

    def _cmd_show(self, argv: list[str]) -> Any:
        from llmlab.views.display import Rendered

        p = _sub_parser("show")
        p.add_argument("run", nargs="?", default="last")
        p.add_argument("-f", "--format", default="text", choices=("text", "markdown", "json", "code"))
        a = p.parse_args(argv)
        result = self._run_result(a.run)
        meta = result.meta
        header = f"run {result.run_id} · {meta.get('name') or ''} · {meta.get('status')} · {meta.get('created_at_utc')}"
        return Rendered(self._result_bundle(result, a.format, header=header))

    def _cmd_compare(self, argv: list[str]) -> Any:
        from llmlab.views.display import Rendered, frame_bundle

        p = _sub_parser("compare")
        p.add_argument("run", nargs="?", default="last")
        a = p.parse_args(argv)
        result = self._run_result(a.run)
        try:
            import llmlab.widgets  # noqa: F401
        except ModuleNotFoundError as exc:
            if exc.name not in ("llmlab.widgets", "ipywidgets"):
                raise
            from llmlab.analysis import summarize

            summ = summarize(result, by=("model",))
            cols = [c for c in ("model", "n", "n_ok", "quality", "quality_ci_low", "quality_ci_high",
                                "latency_p50_ms", "latency_p95_ms", "ttft_p50_ms", "cost_usd",
                                "cost_per_1k_prompts_usd", "error_rate", "cache_hit_rate") if c in summ.columns]
            return Rendered(frame_bundle(summ[cols], title=f"run {result.run_id}: summary per model "
                                         "(the comparison widget needs llmlab.widgets)"))
        import llmlab

        return llmlab.compare(result)

    def _cmd_route(self, argv: list[str]) -> Any:
        from llmlab.errors import RoutingError

        p = _sub_parser("route")
        p.add_argument("run", nargs="?", default="last")
        p.add_argument("--export", metavar="PATH")
        p.add_argument("--tolerance", type=float, default=0.02)
        p.add_argument("--min-quality", type=float)
        p.add_argument("--max-p95-ms", type=float)
        p.add_argument("--min-n", type=int, default=5)
        a = p.parse_args(argv)
        result = self._run_result(a.run)
        from llmlab.routing import routing_table

        try:
            table = routing_table(result, tolerance=a.tolerance, min_quality=a.min_quality,
                                  max_latency_p95_ms=a.max_p95_ms, min_n=a.min_n)
            if a.export:
                from IPython.display import display

                from llmlab.routing.litellm_config import write_litellm_config
                from llmlab.views.display import text_bundle

                path = write_litellm_config(table, a.export, run_id=result.run_id)
                display(text_bundle(f"LiteLLM config written to {path} (run {result.run_id})"), raw=True)
        except RoutingError as exc:
            raise UsageError(_one_line(exc)) from exc
        return table

    def _sql(self, rest: str) -> Any:
        query = rest.strip()
        if len(query) >= 2 and query[0] == query[-1] and query[0] in "\"'":
            query = query[1:-1]
        if not query.strip():
            raise UsageError('usage: %llm sql "SELECT ..." (tables: runs, prompts, scores; views: calls, call_quality)')
        import duckdb

        try:
            return self._store().sql(query)
        except duckdb.Error as exc:
            raise UsageError(f"SQL error: {_one_line(exc)}") from None


def _full_help() -> str:
    return _HELP + _cell_parser().format_help()


LLMMagics.llm.__doc__ = _full_help()


# -- small helpers -------------------------------------------------------------------------------------------
def _ignore_delta(*_: Any) -> None:
    """Passed as ``on_delta`` so the runner keeps partial texts for ``--stream`` (read in ``on_tick``)."""


def _usd(v: float) -> str:
    from llmlab.views.display import fmt_usd

    return fmt_usd(v)


def _esc(text: str) -> str:
    from llmlab.views.display import escape

    return escape(text)


def _short_name(cell: str, n: int = 60) -> str:
    first = " ".join(cell.split())
    return first if len(first) <= n else first[: n - 1] + "…"


def _source_columns(source: Any) -> set[str]:
    """Column names of a ``--prompts`` source (row fields win over namespace variables when filling)."""
    try:
        import pandas as pd

        if isinstance(source, pd.DataFrame):
            return {str(c) for c in source.columns}
    except ImportError:  # pragma: no cover
        pass
    from llmlab.prompts import PromptSet, load_prompts

    if isinstance(source, PromptSet):
        return {str(k) for p in source for k in p.vars}
    if isinstance(source, (list, tuple)):
        return {str(k) for item in source if isinstance(item, dict) for k in item} | {"prompt"}
    if isinstance(source, str):
        try:
            ps = load_prompts(source)
        except PromptSetError:
            return set()
        return {str(k) for p in ps for k in p.vars}
    return set()


def _model_order(result: Any, frame: Any) -> dict[str, int]:
    plan = getattr(result, "plan", None)
    names = [s.name for s in plan.specs] if plan is not None else []
    if not names:
        try:
            names = list(result.meta.get("models") or [])
        except Exception:  # noqa: BLE001
            names = []
    order = {m: i for i, m in enumerate(names)}
    for m in frame["model"].unique() if len(frame) else []:
        order.setdefault(m, len(order))
    return order


def _prompt_order(result: Any, frame: Any) -> list[str]:
    plan = getattr(result, "plan", None)
    ids = [p.prompt_id for p in plan.prompt_set] if plan is not None else []
    seen = dict.fromkeys(ids)
    for pid in frame["prompt_id"].tolist():
        seen.setdefault(pid, None)
    return list(seen)


# -- extension entry points -------------------------------------------------------------------------------------
def load_ipython_extension(ipython: Any) -> None:
    """Register :class:`LLMMagics` on ``ipython`` (``%load_ext llmlab``). Loading twice is harmless: the
    registered instance (and its ``%config`` values) is kept."""
    if isinstance(ipython.magics_manager.registry.get("LLMMagics"), LLMMagics):
        return
    from llmlab.warmup import warm_up

    magics = LLMMagics(shell=ipython)
    # a daemon thread prepares what the first %%llm cell needs (imports, the store it will use, LiteLLM's first
    # call) while the user types it
    warm_up(store_path=magics.store_path)
    ipython.register_magics(magics)
    if magics not in ipython.configurables:
        ipython.configurables.append(magics)


def unload_ipython_extension(ipython: Any) -> None:
    """Remove the ``%llm``/``%%llm`` magics (``%unload_ext llmlab``)."""
    magics = ipython.magics_manager.registry.pop("LLMMagics", None)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("llm", None)
    if magics is not None and magics in ipython.configurables:
        ipython.configurables.remove(magics)
