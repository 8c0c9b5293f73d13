"""Benchmark: Frugal's cost for a cell against a bare, batched ``torch.inference_mode`` loop (issue 8, #1).

Both sides score the same items with the same loaded model and compute the same numbers:

* causal LMs (smollm2-135m): per item, the prompt once (left-padded batch, KV cache kept) and each choice's
  tokens on the reordered cache, i.e. the same forward passes as Frugal's scorer, written as plainly as
  possible; log-likelihoods are checked equal to Frugal's to 1e-4;
* encoders (minilm-l6): mean-pooled, normalised embeddings of the inputs and the choices, cosine argmax.

Bare time = tokenisation + one warm-up batch + the scoring loop. Frugal time = a real ``run()`` of one cell
(meter ``estimate``, one repeat, idle 0, fresh store) from the moment its model is loaded to the moment the
cell is stored: tokenisation, warm-up, the measured window, metrics, CIs and the SQLite write (timed from the
previous cell's event, so the task must not be its suite's first). Model loading and the one-off footprint
of the variant (serialised size, parameter counts: reported apart) are excluded from both. The two
alternate ``--rounds`` times; medians reported.

    python bench/overhead.py [--models smollm2-135m minilm-l6] [--limit 100] [--rounds 5]
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
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402
from _out import write_section  # noqa: E402 - bench/ is on sys.path when run as a script

from evaluator.backends import get_backend  # noqa: E402
from evaluator.config import RunConfig  # noqa: E402
from evaluator.environment import environment  # noqa: E402
from evaluator.models import default_registry_path, load_registry, resolve  # noqa: E402
from evaluator.runner import run  # noqa: E402
from evaluator.scoring import load  # noqa: E402
from evaluator.suite import load_suite  # noqa: E402
from evaluator.variants import resolve_variant  # noqa: E402


def bare_causal(model, tok, prompts, choices, batch_size):
    """Log-likelihood of every choice: prompt once per item, choices on the expanded cache."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    reqs = []
    for p, cs in zip(prompts, choices, strict=True):
        ctx = tok(p, add_special_tokens=False)["input_ids"]
        conts = [tok(p + " " + c, add_special_tokens=False)["input_ids"][len(ctx):] for c in cs]
        reqs.append((ctx, conts))
    order = sorted(range(len(reqs)), key=lambda i: -len(reqs[i][0]))
    out = [None] * len(reqs)

    def batch(idx):
        rs = [reqs[i] for i in idx]
        lp = max(len(r[0]) for r in rs)
        ids = torch.full((len(rs), lp), pad)
        mask = torch.zeros((len(rs), lp), dtype=torch.long)
        for b, (ctx, _) in enumerate(rs):
            ids[b, lp - len(ctx):] = torch.tensor(ctx)
            mask[b, lp - len(ctx):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        res = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(res.logits[:, -1].float(), -1)
        lls = [[first[b, c[0]].item() for c in conts] for b, (_, conts) in enumerate(rs)]
        rows = [(b, k) for b, (_, conts) in enumerate(rs) for k, c in enumerate(conts) if len(c) > 1]
        if rows:
            lc = max(len(rs[b][1][k]) - 1 for b, k in rows)
            cids = torch.full((len(rows), lc), pad)
            cmask = torch.zeros((len(rows), lc), dtype=torch.long)
            for j, (b, k) in enumerate(rows):
                c = rs[b][1][k][:-1]
                cids[j, :len(c)] = torch.tensor(c)
                cmask[j, :len(c)] = 1
            sel = torch.tensor([b for b, _ in rows])
            cache = res.past_key_values
            cache.reorder_cache(sel)
            cpos = mask.sum(-1)[sel].unsqueeze(1) + torch.arange(lc).unsqueeze(0)
            o = model(input_ids=cids, attention_mask=torch.cat([mask[sel], cmask], 1), position_ids=cpos,
                      past_key_values=cache, use_cache=True)
            logp = torch.log_softmax(o.logits.float(), -1)
            for j, (b, k) in enumerate(rows):
                tg = torch.tensor(rs[b][1][k][1:])
                lls[b][k] += logp[j, torch.arange(len(tg)), tg].sum().item()
        for i, ll in zip(idx, lls, strict=True):
            out[i] = ll

    with torch.inference_mode():
        batch(order[:batch_size])  # warm-up, as Frugal does
        for s in range(0, len(order), batch_size):
            batch(order[s:s + batch_size])
    return out


def bare_encoder(model, tok, texts, choices, batch_size):
    """Cosine of each input with each of its choices (mean pooling, L2 norm)."""

    def emb(xs):
        vecs = []
        for s in range(0, len(xs), batch_size):
            enc = tok(xs[s:s + batch_size], padding=True, truncation=True, max_length=512, return_tensors="pt")
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            vecs.append(torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1))
        return torch.cat(vecs)

    with torch.inference_mode():
        emb(texts[:batch_size])  # warm-up
        x = emb(texts)
        flat = [c for cs in choices for c in cs]
        cv = emb(flat)
    out, pos = [], 0
    for q, cs in zip(x, choices, strict=True):
        out.append((cv[pos:pos + len(cs)] @ q).tolist())
        pos += len(cs)
    return out


def bare_for(kind, lm, task, items, batch_size):
    """The bare loop for one model kind, as a no-argument callable."""
    if kind == "causal-lm":
        prompts = [task.render_prompt(i) for i in items]
        return lambda: bare_causal(lm.model, lm.tokenizer, prompts, [i.choices for i in items], batch_size)
    texts = [task.render_encoder_input(i) for i in items]
    # Frugal's encoder batch is twice the run's batch size; the bare loop uses the same
    return lambda: bare_encoder(lm.model, lm.tokenizer, texts, [task.choice_descriptions(i) for i in items],
                                batch_size * 2)


def frugal_cell(name, suite, task, limit, batch_size, threads):
    """Seconds from 'model loaded' to 'cell stored' in a real run, and the cell."""
    store = Path(tempfile.mkdtemp()) / "o.sqlite"
    events = []

    def on_event(e):
        events.append((time.perf_counter(), e))

    cfg = RunConfig(suites=(suite,), models=(name,), variants=("fp32",), limit=limit, repeats=1,
                    batch_size=batch_size, threads=threads, meter="estimate", idle_s=0, store=str(store),
                    encoder_method="zero-shot")
    res = run(cfg, on_event=on_event)
    cell = next(c for c in res.cells if c.task == task)
    assert cell.status == "ok", cell.error
    # the cell's own time: from the previous cell's "stored" event (the model is loaded and its footprint
    # taken by then) to this cell's; the target task must not be the suite's first
    k = next(i for i, (_, e) in enumerate(events) if e["type"] == "cell" and e["task"] == task)
    assert events[k - 1][1]["type"] == "cell", "pick a task that is not the suite's first"
    return events[k][0] - events[k - 1][0], cell


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="+", default=["smollm2-135m", "minilm-l6"])
    ap.add_argument("--suite", default="finance")
    ap.add_argument("--task", default="numeracy")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="bench/out/overhead.md")
    args = ap.parse_args()
    threads = torch.get_num_threads()
    reg = load_registry(default_registry_path())
    suite = load_suite(args.suite)
    task = next(t for t in suite.tasks if t.name == args.task)
    items = task.select(args.limit)
    rows, raw = [], {}
    for name in args.models:
        spec = reg[name]
        lm = load(resolve(spec), resolve_variant("fp32"), "cpu")
        fn = bare_for(spec.kind, lm, task, items, args.batch_size)
        t0 = time.perf_counter()
        lm.footprint()
        footprint_s = time.perf_counter() - t0
        bare_t, fr_t = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            scores = fn()
            bare_t.append(time.perf_counter() - t0)
            secs, cell = frugal_cell(name, args.suite, args.task, args.limit, args.batch_size, threads)
            fr_t.append(secs)
        bare_pred = [max(range(len(s)), key=s.__getitem__) for s in scores]
        bare_acc = sum(p == i.gold for p, i in zip(bare_pred, items, strict=True)) / len(items)
        assert abs(bare_acc - cell.accuracy) < 1e-9, (name, bare_acc, cell.accuracy)
        b, f = statistics.median(bare_t), statistics.median(fr_t)
        raw[name] = {"bare_s": bare_t, "frugal_s": fr_t, "accuracy": cell.accuracy,
                     "scoring_window_s": cell.duration_s, "footprint_s": footprint_s}
        rows.append(f"| {name} | {args.suite}/{args.task} | {len(items)} | {b:.2f} | {f:.2f} | "
                    f"{cell.duration_s:.2f} | **{f / b:.3f}** | {cell.accuracy:.3f} | {footprint_s:.2f} |")
        print(rows[-1], file=sys.stderr, flush=True)
        lm = None
    env = environment(threads, "cpu", (get_backend("torch"),))
    md = [f"Machine: {env['cpu_model']}, {threads} threads, torch {env['torch']}, {env['date']}. "
          f"Command: `python bench/overhead.py --limit {args.limit} --rounds {args.rounds}` "
          f"(batch {args.batch_size}; medians of {args.rounds} alternating rounds).", "",
          "| model | task | items | bare loop s | Frugal cell s | of which scoring window s | Frugal / bare | "
          "accuracy (both) | one-off footprint s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|", *rows]
    write_section(args.out, md, raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
