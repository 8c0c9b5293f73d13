"""Benchmark: every backend x weight format on the built-in suites, with accuracy (issue 14).

For each model and each variant that applies to it (torch fp32 as the reference, llama.cpp GGUF Q4 / Q8_0 /
F16, ONNX Runtime fp32 / int8 / int4, OpenVINO fp32 / int8 / int4), one real ``run()`` over the suites'
tasks (``--limit`` items each, one repeat, the machine's meter: an estimate here) gives accuracy, energy per
1,000 items, peak memory, file size and load time. Then, at backend level, tokens/s of prefill and decode
with GenerationRequest (prefill = the same prompts with max_new_tokens=1; decode = the rest), and for
llama.cpp Frugal's overhead over a bare llama.cpp loop on the same log-likelihood requests (Frugal = the
task type's prepare + one scoring pass, as the runner's window runs it; bare = the same token ids through
llama-cpp-python's low-level decode, written plainly).

    python bench/runtimes.py [--models smollm2-135m minilm-l6] [--suites finance] [--limit 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from _out import write_section  # noqa: E402 - bench/ is on sys.path when run as a script

from evaluator.backends import (  # noqa: E402
    GENERATION,
    LOGLIKELIHOOD,
    GenerationRequest,
    backend_availability,
    get_backend,  # noqa: E402
)
from evaluator.config import RunConfig  # noqa: E402
from evaluator.environment import environment, present_flags  # noqa: E402
from evaluator.models import default_registry_path, load_registry, resolve  # noqa: E402
from evaluator.runner import run  # noqa: E402
from evaluator.suite import load_suite  # noqa: E402
from evaluator.tasks import ScoringOptions, get_task_type  # noqa: E402
from evaluator.variants import resolve_variant  # noqa: E402

CAUSAL = ("fp32", "gguf-q4", "gguf-q8_0", "gguf-f16", "ort-fp32", "ort-int8", "ort-int4", "ov-fp32", "ov-int8",
          "ov-int4")
ENCODER = ("fp32", "ort-fp32", "ort-int8", "ov-fp32", "ov-int8")


def variants_for(kind: str, only: list[str] | None = None) -> list[str]:
    names = CAUSAL if kind == "causal-lm" else ENCODER
    return [v for v in names if backend_availability(resolve_variant(v).backend) is None and (not only or v in only)]


def speed(spec, variant_name, threads, prompts, max_new):
    """(prefill tok/s, decode tok/s, generated tokens) at backend level, after one warm-up prompt."""
    v = resolve_variant(variant_name)
    b = get_backend(v.backend)
    b.set_threads(threads)
    loaded = b.load(resolve(spec), v, "cpu")
    try:
        reqs = [GenerationRequest(loaded.render_chat([{"role": "user", "content": p}]) if loaded.chat_template()
                                  else p, max_new) for p in prompts]
        one = [GenerationRequest(r.prompt, 1) for r in reqs]
        loaded.generate(loaded.prepare(GENERATION, one[:1]), 1)  # warm-up
        prep1, prepn = loaded.prepare(GENERATION, one), loaded.prepare(GENERATION, reqs)
        t0 = time.perf_counter()
        g1 = loaded.generate(prep1, 1)
        t_pre = time.perf_counter() - t0
        t0 = time.perf_counter()
        gn = loaded.generate(prepn, 1)
        t_all = time.perf_counter() - t0
    finally:
        loaded.close()
    prompt_tokens = sum(g.prompt_tokens for g in g1)
    decoded = sum(max(0, g.generated_tokens - 1) for g in gn)
    return prompt_tokens / t_pre, decoded / max(1e-9, t_all - t_pre), sum(g.generated_tokens for g in gn)


def overhead(spec, task, limit, threads, rounds):
    """Frugal's llama.cpp scoring pass against a bare low-level llama.cpp loop on the same token ids."""
    import llama_cpp
    import numpy as np

    from evaluator.backends.llamacpp import N_BATCH, _log_softmax

    v = resolve_variant("gguf-q4")
    b = get_backend("llamacpp")
    b.set_threads(threads)
    loaded = b.load(resolve(spec), v, "cpu")
    ttype, items = get_task_type(task.type), task.select(limit)
    try:
        scoring = ttype.prepare(task, items, loaded, ScoringOptions(8, "auto"))
        tokenised = loaded.prepare(LOGLIKELIHOOD, scoring_requests(task, items, loaded))
        llm, n_vocab = loaded.llm, loaded.llm.n_vocab()
        ctx = llm._ctx.ctx

        def decode(batch, seq, n_past, all_logits):
            """The same decode pattern as Frugal's: drop the cache after n_past, decode, copy the logits."""
            llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(ctx), -1, n_past, -1)
            rows = []
            for s in range(0, len(seq), N_BATCH):
                chunk = seq[s:s + N_BATCH]
                batch.n_tokens = len(chunk)
                for i, t in enumerate(chunk):
                    batch.token[i], batch.pos[i], batch.n_seq_id[i] = t, n_past + s + i, 1
                    batch.seq_id[i][0], batch.logits[i] = 0, all_logits or (s + i == len(seq) - 1)
                llama_cpp.llama_decode(ctx, batch)
                rows.append(np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx),
                                                  shape=(len(chunk) if all_logits else 1, n_vocab)).copy())
            return np.concatenate(rows) if all_logits else rows[-1][0]

        def bare():
            batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
            out = []
            for r in tokenised:
                first = _log_softmax(decode(batch, list(r.context), 0, False))
                row = []
                for cont in r.continuations:
                    ll = float(first[cont[0]])
                    if len(cont) > 1:
                        lp = _log_softmax(decode(batch, list(cont[:-1]), len(r.context), True))
                        ll += float(sum(lp[t, tok] for t, tok in enumerate(cont[1:])))
                    row.append(ll)
                out.append(row)
            llama_cpp.llama_batch_free(batch)
            return out

        frugal_t, bare_t = [], []
        for _ in range(rounds):
            t0 = time.perf_counter()
            scoring = ttype.prepare(task, items, loaded, ScoringOptions(8, "auto"))
            scoring.run()
            frugal_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            loaded.prepare(LOGLIKELIHOOD, scoring_requests(task, items, loaded))
            bare()
            bare_t.append(time.perf_counter() - t0)
    finally:
        loaded.close()
    return statistics.median(frugal_t), statistics.median(bare_t)


def _generation(cells):
    """Generation figures of a variant's generation cells (their mean), or None: accuracy, J per query,
    J per generated token, decode J per token, decode tokens/s, prefill share."""
    if not cells:
        return None

    def mean(attr):
        xs = [getattr(c, attr) for c in cells if getattr(c, attr) is not None]
        return statistics.fmean(xs) if xs else None

    return {"accuracy": mean("accuracy"), "j_per_query": mean("energy_j_per_item"), "j_per_token": mean(
        "energy_j_per_token"), "decode_j_per_token": mean("decode_energy_j_per_token"),
        "decode_tok_s": mean("decode_tokens_per_s"), "prefill_share": mean("prefill_energy_share"),
        "tasks": sorted(f"{c.suite}/{c.task}" for c in cells)}


def scoring_requests(task, items, loaded):
    """The LoglikRequests the task type builds for ``items`` (its own prompt and chat rendering)."""
    from evaluator.tasks.choice import loglik_requests, uses_chat

    return loglik_requests(task, items, loaded, uses_chat(task, loaded))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "qwen2.5-0.5b", "minilm-l6", "mpnet-base"])
    ap.add_argument("--suites", nargs="+", default=["finance", "health"])
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--max-new", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--variants", nargs="+", help="only these variants (default: every one that applies)")
    ap.add_argument("--variants-for", nargs="+", default=[], metavar="MODEL=V1,V2",
                    help="per-model variant lists, e.g. qwen2.5-0.5b=fp32,gguf-q4")
    ap.add_argument("--skip-runs", action="store_true", help="only the speed and overhead figures")
    ap.add_argument("--overhead-only", action="store_true", help="only Frugal's overhead over bare llama.cpp")
    ap.add_argument("--out", default="out/bench/runtimes.md")
    args = ap.parse_args()

    registry = load_registry(default_registry_path())
    headline = load_suite("finance").tasks[0]
    prompts = [" ".join(headline.render_encoder_input(it) for it in headline.select(40)[i:i + 5])
               + "\nSummarise these headlines in one sentence." for i in range(0, 40, 5)]
    env = environment(args.threads, "cpu")
    flags = sorted(present_flags())
    rows, raw = [], {"env": env, "args": vars(args), "cells": [], "speed": {}, "overhead": {}}
    store = Path(tempfile.mkdtemp(prefix="frugal-bench-runtimes-")) / "store.sqlite"
    for name in args.models:
        spec = registry[name]
        if args.overhead_only:
            task = next(t for t in load_suite("finance").tasks if t.type == "classification")
            raw["overhead"][name] = overhead(spec, task, args.limit, args.threads, args.rounds)
            continue
        per = dict(x.split("=", 1) for x in args.variants_for)
        names = variants_for(spec.kind, per[name].split(",") if name in per else args.variants)
        print(f"{name}: {', '.join(names)}", file=sys.stderr, flush=True)
        cells = []
        if not args.skip_runs:
            cfg = RunConfig(suites=tuple(args.suites), models=(name,), variants=tuple(names), limit=args.limit,
                            repeats=1, batch_size=8, threads=args.threads, device="cpu", meter="estimate", idle_s=0,
                            store=str(store))
            cells = [c for c in run(cfg).cells]
            raw["cells"] += [c.to_dict() for c in cells]
        for v in names:
            mine = [c for c in cells if c.variant == v and c.status == "ok" and c.task_type != "generation"]
            gen = [c for c in cells if c.variant == v and c.status == "ok" and c.task_type == "generation"]
            failed = [c for c in cells if c.variant == v and c.status != "ok"]
            sp = None
            if spec.kind == "causal-lm":
                try:
                    sp = speed(spec, v, args.threads, prompts, args.max_new)
                except Exception as exc:  # noqa: BLE001 - a benchmark row says why it has no figure
                    print(f"  speed {v}: {type(exc).__name__}: {exc}", file=sys.stderr)
                raw["speed"][f"{name}:{v}"] = sp
            acc = statistics.fmean(c.accuracy for c in mine) if mine else None
            e1k = statistics.fmean(c.energy_j_per_1k for c in mine) if mine else None
            first = (mine or gen or [None])[0]
            rows.append((name, v, first.backend if first else resolve_variant(v).backend, acc, e1k,
                         sp, max((c.peak_rss_mb or 0) for c in mine + gen) if first else None,
                         first and first.size_mb, first and first.load_s, first and first.weight_dtype,
                         any(c.fallback_kernel for c in mine), failed[0].error if failed and not mine else None,
                         _generation(gen)))
            print(f"  {rows[-1]}", file=sys.stderr, flush=True)
        if spec.kind == "causal-lm" and backend_availability("llamacpp") is None:
            task = next(t for t in load_suite("finance").tasks if t.type == "classification")
            raw["overhead"][name] = overhead(spec, task, args.limit, args.threads, args.rounds)

    md = ["## Deployment runtimes (issue 14)", "",
          f"Machine: {env.get('cpu_model')}, {env.get('cpu_count')} cores (shared with other work), "
          f"instruction sets {', '.join(flags) or 'none detected'}; {args.threads} threads; date {env.get('date')}. "
          f"Suites {', '.join(args.suites)}, {args.limit} items per task, one repeat. **Energy is an estimate** "
          "(CPU time x W per core: no RAPL here), so it tracks CPU time. Tokens/s at backend level "
          f"(GenerationRequest, greedy, {args.max_new} new tokens after prompts of 5 headlines).", "",
          "Choice columns: the suites' classification and multiple-choice tasks; generation columns: their "
          "generation tasks (J / token = the query's energy over its tokens, prefill included; decode J / token = "
          "the decode phase alone).", "",
          "| model | variant | backend | weights | choice accuracy | choice J / 1,000 items (est.) | generation "
          "accuracy | J / query | J / token | decode J / token | prefill share | prefill tok/s | decode tok/s "
          "| peak RSS MB | file MB | load s |", "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]

    def f(x, fmt):
        return "–" if x is None else format(x, fmt)

    for name, v, backend, acc, e1k, sp, rss, size, load_s, dtype, fb, err, g in rows:
        pre, dec = (sp[0], sp[1]) if sp else (None, None)
        note = " (fallback kernel)" if fb else ""
        if err:
            note += f" failed: {err[:80]}"
        g = g or {}
        gacc = g.get("accuracy")
        md.append(f"| {name} | {v}{note} | {backend} | {dtype or '–'} | "
                  f"{f(acc if acc is None else acc * 100, '.1f')} | "
                  f"{f(e1k, ',.0f')} | {f(gacc if gacc is None else gacc * 100, '.1f')} | "
                  f"{f(g.get('j_per_query'), ',.2f')} | {f(g.get('j_per_token'), '.3f')} | "
                  f"{f(g.get('decode_j_per_token'), '.3f')} | "
                  f"{f(g['prefill_share'] * 100 if g.get('prefill_share') is not None else None, '.0f')} | "
                  f"{f(pre, ',.0f')} | {f(dec, '.1f')} | {f(rss, ',.0f')} | {f(size, ',.0f')} | {f(load_s, '.1f')} |")
    if raw["overhead"]:
        md += ["", "Frugal's overhead over a bare llama.cpp loop (gguf-q4, finance/headline-sentiment, same token "
               "ids, medians of the rounds):", ""]
        for name, (fr, ba) in raw["overhead"].items():
            md.append(f"- {name}: Frugal {fr:.2f} s, bare loop {ba:.2f} s, ratio {fr / ba:.3f}")
    write_section(args.out, md, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
