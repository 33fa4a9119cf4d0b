"""The command line, for scripts and CI: ``llmlab run | runs | report | route | sandbox | sql | export | import |
batches | models | import-routellm``.

Bad input exits with status 2 and one line on stderr (``llmlab: error: ...``), no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from llmlab.errors import LLMLabError

__all__ = [
    "main",
]


def _default(field: str) -> object:
    """A run option's default, from :class:`llmlab.runner.options.RunOptions` (the one place defaults live)."""
    from llmlab.runner.options import RunOptions

    return RunOptions.model_fields[field].default


def _routing_default(field: str) -> object:
    """A routing setting's default, from :data:`llmlab.routing.table.ROUTING_DEFAULTS` (one home)."""
    from llmlab.routing.table import ROUTING_DEFAULTS

    return ROUTING_DEFAULTS[field]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="llmlab", description="Evaluate and choose LLMs: fan-out, record, analyse, route.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show llmlab's log and LiteLLM's captured output on stderr (quiet by default)")
    p.add_argument("--db", help="DuckDB store path (default: $LLMLAB_DB or ~/.local/share/llmlab/llmlab.duckdb)")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="fan a prompt set out over models and record every call")
    r.add_argument("prompts", help="a bundled prompt set name (e.g. quickstart) or a CSV/JSONL file")
    r.add_argument("--models", "-m", required=False, help="comma-separated models or @aliases (default: $LLMLAB_MODELS or the sandbox)")
    r.add_argument("--name")
    r.add_argument("--tag", action="append", default=[])
    r.add_argument("--template", help="a {var} template filled per row")
    r.add_argument("--category", help="the category column")
    r.add_argument("--encoding", help="the prompt file's text encoding (default UTF-8; e.g. latin-1)")
    r.add_argument("--system", "-s")
    # defaults live in RunOptions (one home): an option not given is not passed
    r.add_argument("--temperature", "-t", type=float, help=f"default {_default('temperature')}")
    r.add_argument("--max-tokens", type=int, help=f"default {_default('max_tokens')}")
    r.add_argument("--samples", "-n", type=int, help=f"default {_default('samples')}")
    r.add_argument("--concurrency", type=int, help=f"calls in flight, default {_default('concurrency')}")
    r.add_argument("--timeout", type=float, help=f"seconds per request, from the send (default {_default('timeout_s')})")
    r.add_argument("--budget", type=float, help="USD; refuse to start above it, stop issuing calls once spent")
    r.add_argument("--limit", type=int, help="only the first N prompts")
    r.add_argument("--no-cache", action="store_true")
    r.add_argument("--fallback", action="append", default=[], metavar="MODEL=FB1,FB2", help="fallback chain for a model")
    r.add_argument("--dry-run", action="store_true", help="show the plan and the estimated cost; call nothing")
    r.add_argument("--batch", action="store_true",
                   help="use the providers' batch APIs (about half the price, results within 24 h)")
    r.add_argument("--batch-max-requests", type=int, help="requests per provider batch (default: the provider's limit)")
    r.add_argument("--poll", type=float, help=f"with --batch: seconds between checks (default {_default('batch_poll_s')})")
    r.add_argument("--no-wait", action="store_true", help="with --batch: submit and return (`llmlab batches --resume`)")
    r.add_argument("--sandbox-seed", type=int, default=0)

    rs = sub.add_parser("runs", help="list runs, newest first")
    rs.add_argument("--limit", type=int, default=20, help="at most N runs (default 20; 0: all)")
    _add_output_flags(rs)

    sh = sub.add_parser("show", help="a run's summary per model (quality with its 95%% interval, latency, cost)")
    sh.add_argument("run", nargs="?", default=None, help="run id, name or 'latest' (default: the latest run)")
    sh.add_argument("--by", default="model", help="group by: model, or model,category (default model)")
    _add_output_flags(sh)

    rep = sub.add_parser("report", help="write the self-contained HTML report of a run")
    rep.add_argument("run", nargs="?", default="last")
    rep.add_argument("-o", "--output", help="HTML path (default reports/<run>.html)")
    rep.add_argument("--compare", metavar="OTHER", help="add the comparison with another run (same prompts: paired)")

    ro = sub.add_parser("route", help="fit a routing table or policy on a run, show its out-of-sample figures, "
                                      "and export it as a LiteLLM config")
    ro.add_argument("run", nargs="?", default="last")
    ro.add_argument("--export", help="write the LiteLLM config here (a config.yaml path for tables; a directory "
                                     "for --kind prompt / complexity: config, model file and plugin)")
    ro.add_argument("--kind", default="table", choices=["table", "confident", "prompt", "complexity"],
                    help="table (per category), confident (per category, paired comparisons), prompt (learned "
                         "from the prompt text), complexity (tiers of prompt features)")
    ro.add_argument("--tolerance", type=float, default=_routing_default("tolerance"),
                    help=f"quality tolerance from the best (0..1; default {_routing_default('tolerance')})")
    ro.add_argument("--min-quality", type=float)
    ro.add_argument("--max-p95-ms", type=float)
    ro.add_argument("--min-n", type=int, default=_routing_default("min_n"))
    ro.add_argument("--alpha", type=float, default=0.05, help="--kind confident: 1 - confidence of the intervals")
    ro.add_argument("--budget-per-1k", type=float, help="--kind prompt / complexity: USD per 1,000 prompts")
    ro.add_argument("--split-seed", type=int, default=0, help="seed of the fit / held-out split of the prompts")

    sb = sub.add_parser("sandbox", help="run the local sandbox provider server until Ctrl-C")
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--seed", type=int, default=0)
    sb.add_argument("--latency-scale", type=float, default=1.0)
    sb.add_argument("--fault-rate", type=float, default=0.0)

    q = sub.add_parser("sql", help="run SQL against the store and print the result")
    _add_output_flags(q)
    q.add_argument("--attach", action="append", default=[], metavar="ALIAS=PATH",
                   help="also query another store file or a folder of exported runs as ALIAS (read-only)")
    q.add_argument("query")

    ex = sub.add_parser("export", help="a run's results as CSV / JSON (one row per call), or as Parquet files")
    ex.add_argument("run", nargs="?", default="last")
    fmt = ex.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--parquet", metavar="DIR", help="the run's tables as Parquet in DIR/<run_id>/ (llmlab import)")
    fmt.add_argument("--csv", action="store_true", help="the results (Store.results columns) as CSV")
    fmt.add_argument("--json", action="store_true", help="the results as one JSON array of objects")
    ex.add_argument("-o", "--output", help="write the CSV / JSON here instead of stdout")

    imp = sub.add_parser("import", help="read exported runs (a run's folder, or a folder of them) into the store")
    imp.add_argument("path")

    ba = sub.add_parser("batches", help="list the provider batches of batch runs; --resume / --cancel one run's")
    ba.add_argument("run", nargs="?", default=None, help="only this run's batches (default: every run)")
    ba.add_argument("--resume", action="store_true", help="submit, check and collect the run's batches")
    ba.add_argument("--cancel", action="store_true", help="cancel the run's running batches (completed rows kept)")
    ba.add_argument("--no-wait", action="store_true", help="with --resume: one pass, do not wait for the batches")
    ba.add_argument("--poll", type=float, help="with --resume: seconds between checks (default: the run's)")
    _add_output_flags(ba)

    sub.add_parser("models", help="known models, aliases and which provider keys are set (names only)")

    im = sub.add_parser("import-routellm", help="import RouteLLM's published results as runs")
    im.add_argument("path", nargs="?", default=None, help="the routellm data folder (default ../shared/data/routellm)")
    im.add_argument("--benchmarks", default="mmlu,gsm8k,mt_bench")
    return p


def _add_output_flags(p: argparse.ArgumentParser) -> None:
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print JSON (one array of objects)")
    fmt.add_argument("--csv", action="store_true", help="print CSV")


def _print_frame(frame, args: argparse.Namespace | None = None, empty: str = "(no rows)") -> None:  # noqa: ANN001
    """Print a DataFrame as a table, or as JSON / CSV when ``--json`` / ``--csv`` was given."""

    if args is not None and getattr(args, "json", False):
        print(frame.to_json(orient="records", date_format="iso", default_handler=str))
        return
    if args is not None and getattr(args, "csv", False):
        print(frame.to_csv(index=False), end="")
        return
    if len(frame) == 0:
        print(empty)
        return

    from llmlab.views.terminal import render_table

    print(render_table(frame), end="")


# `llmlab runs` as a table (--json / --csv give every column)
_RUNS_TABLE_COLUMNS = ("run_id", "name", "status", "n_calls", "n_error", "cost_usd", "created_at_utc", "models",
                       "source")

# Run options as the CLI spells them (errors name the flag the user typed).
_OPTION_FLAGS = {"temperature": "--temperature", "max_tokens": "--max-tokens", "samples": "--samples",
                 "system": "--system", "concurrency": "--concurrency", "timeout_s": "--timeout",
                 "budget_usd": "--budget", "fallbacks": "--fallback", "batch_max_requests": "--batch-max-requests",
                 "batch_poll_s": "--poll"}


def _cmd_run(args: argparse.Namespace, store) -> int:  # noqa: ANN001
    import os

    from llmlab.models import SANDBOX_PREFIX, default_models, expand
    from llmlab.prompts import load_prompts
    from llmlab.runner import check_budget, options_from, plan, run

    # one run, then the process ends: spare worker processes (llmlab.runner.workers) would have no next run
    os.environ.setdefault("LLMLAB_WORKER_SPARES", "0")
    models = expand(args.models) if args.models else default_models()
    fallbacks = {}
    for spec in args.fallback:
        if "=" not in spec:
            raise LLMLabError(f"--fallback {spec!r}: use MODEL=FALLBACK1,FALLBACK2")
        k, v = spec.split("=", 1)
        fallbacks[k.strip()] = expand(v)
    if any(m.startswith(SANDBOX_PREFIX) for m in [*models, *sum(fallbacks.values(), [])]):
        if not os.environ.get("LLMLAB_SANDBOX_API_BASE"):
            from llmlab.sandbox import ensure_sandbox

            ensure_sandbox(seed=args.sandbox_seed)
    if args.dry_run and not args.limit:
        prompts = None  # a dry run of a whole file streams it (llmlab.runner.plan_stream): memory bounded by a chunk
    else:
        prompts = load_prompts(args.prompts, template=args.template, category_column=args.category,
                               encoding=args.encoding, limit=args.limit or None)  # a limit reads only what it needs
    given = dict(temperature=args.temperature, max_tokens=args.max_tokens, samples=args.samples, system=args.system,
                 concurrency=args.concurrency, timeout_s=args.timeout, budget_usd=args.budget)
    opts = {k: v for k, v in given.items() if v is not None}
    opts.update(cache=not args.no_cache, fallbacks=fallbacks)
    if args.batch:
        opts["mode"] = "batch"
        batch_opts = dict(batch_max_requests=args.batch_max_requests, batch_poll_s=args.poll,
                          batch_wait=False if args.no_wait else None)
        opts.update({k: v for k, v in batch_opts.items() if v is not None})
    checked = options_from(_OPTION_FLAGS, **opts)  # the flags' names in any error, before anything runs
    if args.dry_run:
        if prompts is None:
            from llmlab.runner.plan_stream import stream_plan

            the_plan = stream_plan(args.prompts, models, options=checked, store=store, template=args.template,
                                   category_column=args.category, encoding=args.encoding)
        else:
            the_plan = plan(prompts, models, options=checked, store=store)
        print(repr(the_plan))
        check_budget(the_plan, option="--budget")  # type: ignore[arg-type]  # PlanSummary duck-types Plan here
        return 0
    res = run(prompts, models, name=args.name, tags=args.tag, store=store, **opts)
    print(res.headline(store=False))
    if len(res.results):
        _print_frame(res.brief_summary())
    print(f"run_id: {res.run_id}")
    print(f"store: {store.path}")
    return 0


def _route_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    if args.kind == "table":
        return {"tolerance": args.tolerance, "min_quality": args.min_quality, "max_latency_p95_ms": args.max_p95_ms,
                "min_n": args.min_n}
    if args.kind == "confident":
        return {"tolerance": args.tolerance, "alpha": args.alpha, "min_n": args.min_n}
    return {"target_cost_per_1k_usd": args.budget_per_1k, "min_quality": args.min_quality}


def _figures_line(fig: dict[str, Any]) -> str:
    shares = ", ".join(f"{m} {100 * v:.0f}%" for m, v in sorted(fig["share_by_model"].items()) if v)
    return (f"quality {fig['quality']:.3f} at ${fig['cost_per_1k_usd']:.4g} per 1k prompts over {fig['n']} prompts; "
            f"best single model {fig['best_single_model']}: quality {fig['best_single_quality']:.3f} at "
            f"${fig['best_single_cost_per_1k_usd']:.4g} ({fig['savings_pct']:.1f}% saved); calls: {shares}")


def _cmd_route(args: argparse.Namespace, store: Any) -> int:
    from llmlab.routing.holdout import holdout_figures

    run_id = store.resolve_run(args.run)
    rep = holdout_figures(store.results(run_id), args.kind, seed=args.split_seed, **_route_kwargs(args))
    fitted = rep["fitted"]
    if hasattr(fitted, "columns"):
        shown = fitted.assign(fallbacks=fitted["fallbacks"].map(lambda f: ",".join(f)))
        _print_frame(shown[["category", "model", "quality", "n", "latency_p95_ms", "cost_per_1k_prompts_usd",
                            "fallbacks"]])
    else:
        print(f"{fitted.kind} policy over {', '.join(fitted.models)} (cheapest first)")
    oos = rep["out_of_sample"]
    if oos is not None:
        print(f"out of sample (fitted on {rep['n_fit']} prompts, evaluated on the {rep['n_eval']} others; split seed "
              f"{rep['seed']}): {_figures_line(oos)}")
    else:
        print("out of sample: not available (" + rep.get("out_of_sample_error", "fewer than 4 prompts") + ")")
    print(f"in sample (fitted and evaluated on all prompts; what --export writes): {_figures_line(rep['in_sample'])}")
    if args.export:
        from llmlab.routing.litellm_config import write_litellm_config
        from llmlab.routing.policy_export import write_policy_config

        path = (write_litellm_config(fitted, args.export, run_id=run_id) if hasattr(fitted, "columns")
                else write_policy_config(fitted, args.export, run_id=run_id))
        print(f"LiteLLM config: {path}")
    return 0


def _cmd_batches(args: argparse.Namespace, store) -> int:  # noqa: ANN001
    from llmlab.runner.resume import batches, cancel_batches, resume

    if (args.resume or args.cancel) and args.run is None:
        raise LLMLabError("--resume / --cancel need a RUN (an id, a name, or last)")
    if args.cancel:
        ids = cancel_batches(args.run, store=store)
        print(f"cancel requested for {len(ids)} batches" + (": " + ", ".join(ids) if ids else ""))
    if args.resume:
        res = resume(args.run, store=store, wait=not args.no_wait, poll_s=args.poll)
        print(repr(res))
        print(f"run {res.run_id}: {res.meta['status']}")
    frame = batches(args.run, store=store)
    cols = ["run_id", "model", "provider", "batch_id", "state", "provider_status", "n_requests", "n_ok", "n_error",
            "created_at_utc", "completed_at_utc", "collected_at_utc"]
    _print_frame(frame[cols] if len(frame) else frame, args, empty="no provider batches in " + str(store.path))
    return 0


def _one_line(exc: BaseException) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):  # pydantic.ValidationError: name each bad option
        try:
            return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in errors())
        except Exception:  # noqa: BLE001
            pass
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``llmlab`` command. Returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="llmlab: %(message)s")
    if args.verbose:
        from llmlab.logs import set_log_level

        set_log_level("DEBUG")
    try:
        if args.command == "sandbox":
            from llmlab.sandbox import main as sandbox_main

            return sandbox_main(["--port", str(args.port), "--host", args.host, "--seed", str(args.seed),
                                 "--latency-scale", str(args.latency_scale), "--fault-rate", str(args.fault_rate)]) or 0
        if args.command == "models":
            from llmlab.models import SANDBOX_MODELS, aliases, key_status

            print("sandbox models: " + ", ".join(SANDBOX_MODELS))
            for name, targets in aliases().items():
                print(f"alias {name} -> {', '.join(targets)}")
            for k in key_status():
                print(f"provider {k['provider']}: {k['env_var']} {'set' if k['set'] else 'not set'}")
            return 0
        from llmlab.store import Store

        store = Store(args.db) if args.db else Store()
        if args.command == "run":
            return _cmd_run(args, store)
        if args.command == "runs":
            runs = store.runs()
            if args.limit:
                runs = runs.head(args.limit)
            if not (args.json or args.csv):  # a person reads the table: the columns that tell runs apart first
                runs = runs[[c for c in _RUNS_TABLE_COLUMNS if c in runs.columns]]
            _print_frame(runs, args, empty="no runs yet in " + str(store.path) + " (try: llmlab run quickstart)")
            return 0
        if args.command == "show":
            from llmlab.analysis import summarize
            from llmlab.views.terminal import summary_for_terminal

            run_id = store.resolve_run(args.run)
            by = tuple(b.strip() for b in args.by.split(",") if b.strip())
            summary = summarize(run_id, by=by, store=store)
            meta = store.run(run_id)
            if not (args.json or args.csv):
                print(f"run {run_id}: {meta.get('name') or ''} ({meta.get('status')})")
                summary = summary_for_terminal(summary)
            _print_frame(summary, args, empty=f"run {run_id} has no calls")
            return 0
        if args.command == "sql":
            for spec in args.attach:
                alias, sep, path = spec.partition("=")
                if not sep:
                    raise LLMLabError(f"--attach {spec!r}: use ALIAS=PATH")
                store.attach(path, alias.strip())
            _print_frame(store.sql(args.query), args)
            return 0
        if args.command == "batches":
            return _cmd_batches(args, store)
        if args.command == "export":
            if args.parquet:
                from llmlab.transfer import export_run

                print(f"exported: {export_run(args.run, args.parquet, store=store)}")
                return 0
            from llmlab.transfer import results_text

            results = store.results(store.resolve_run(args.run))
            text = results_text(results, "csv" if args.csv else "json")
            if args.output:
                from pathlib import Path

                Path(args.output).write_text(text, encoding="utf-8")
                print(f"exported {len(results)} calls: {args.output}")
            else:
                sys.stdout.write(text)
            return 0
        if args.command == "import":
            from llmlab.transfer import import_run

            for r in import_run(args.path, store=store):
                what = (f"{r['calls_added']} calls, {r['prompts_added']} prompts, {r['scores_added']} scores added"
                        if r["run_added"] or r["calls_added"] or r["scores_added"] else "already in the store")
                print(f"{r['run_id']}: {what}" + ("" if r["verified"] else " (calls differ from the export)"))
            return 0
        if args.command == "report":
            from llmlab.views.report import report_run

            other = store.resolve_run(args.compare) if args.compare else None
            path = report_run(args.run, args.output, store=store, compare_with=other)
            print(f"report: {path}")
            return 0
        if args.command == "route":
            return _cmd_route(args, store)
        if args.command == "import-routellm":
            from llmlab.routing.routellm import import_routellm

            ids = import_routellm(args.path, store=store, benchmarks=[b.strip() for b in args.benchmarks.split(",")])
            print(json.dumps(ids))
            return 0
    except (LLMLabError, FileNotFoundError, ValueError) as exc:
        if args.debug:
            raise
        print(f"llmlab: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmlab: interrupted (completed calls are recorded)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - every CLI error is one line (--debug shows the traceback)
        if args.debug:
            raise
        from llmlab._litellm import redact

        first = (redact(str(exc)).strip().splitlines() or [""])[0]
        print(f"llmlab: error: {type(exc).__name__}: {first}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("llmlab: interrupted; completed calls are recorded", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
