"""Benchmark: Frugal vs EleutherAI lm-evaluation-harness, side by side on the same work.

Usage (project venv, from the repository root)::

    python bench/lmeval_side_by_side.py --model smollm2-135m --model qwen2.5-0.5b \
        [--limit N] [--task finance/numeracy --task finance/headline-sentiment] \
        [--batch-size 16] [--threads T] [--repeats 1] [--cli-check] [--out bench/out/lmeval.md]

Writes ``bench/out/lmeval.md`` (Markdown table) and ``bench/out/lmeval.json`` (everything, per item).

Same work on both sides
-----------------------
For each task (default: finance/numeracy, multiple choice; finance/headline-sentiment, classification)
the script generates an lm-eval ``multiple_choice`` task YAML (into ``bench/out/lmeval-work/tasks``)
that reads the suite's own JSONL file (``dataset_path: json``), keeps the ``split: test`` rows in file
order (``process_docs``), renders Frugal's prompt template as a Jinja ``doc_to_text`` (``{field}`` ->
``{{ field }}``), uses the item's ``choices`` (multiple choice) or the labels' ``text`` (classification)
as ``doc_to_choice``, and ``target_delimiter: " "``, so lm-eval scores ``prompt`` + ``" " + choice``,
exactly what ``evaluator.scoring`` scores. 0-shot, no chat template, no description. ``--limit N`` takes
the first N test items on both sides. The model is the same local folder (fp32 safetensors; lm-eval:
``HFLM(pretrained=<folder>, dtype=float32, device=cpu, batch_size=B)``, i.e. ``--model hf``), with the
same torch 2.13.0 CPU build and transformers version in both venvs. Both sides run with
``OMP_NUM_THREADS=MKL_NUM_THREADS=T`` and ``torch.set_num_threads(T)``.

The run *checks* that the work was the same: lm-eval's logged samples (``log_samples``) must show, for
every item, the same item id, the same context string and the same continuation strings as Frugal's
(``inputs identical`` column; a mismatch is reported, never hidden). Per item it also compares the
predictions (acc and acc_norm) and the summed log-likelihoods (max absolute difference). acc is the
argmax of the summed log-likelihood, acc_norm divides it by the choice's character length, on both sides.

Timing (what "items/s" means)
-----------------------------
Model load is EXCLUDED on both sides, and so is reading the task data. lm-eval runs in its own venv as a
subprocess of this script (this file in ``--_driver`` mode, run by ``bench/.venv-lmeval/bin/python``); it
uses lm-eval's Python API the way ``lm_eval --model hf ...`` does: it constructs ``HFLM`` (timed
separately as load), loads the generated tasks with ``TaskManager(include_path=...)``, runs one warm-up
``lm_eval.evaluator.evaluate`` on the first ``min(B, N)`` items, then times ``evaluate(lm, tasks,
limit=N, bootstrap_iters=0)`` per task: building requests (Jinja rendering), tokenising, the forward
passes, and computing metrics. Frugal, in this process, loads the model with ``evaluator.scoring.load``
(excluded), warms up on the first ``min(B, N)`` items, then times ``encode_requests`` + ``score_causal``
(rendering, tokenising, forward passes, argmax) per task. (``frugal run`` itself tokenises outside its
measured window; here tokenising is inside the window on both sides, so the comparison is like for like.)
With ``--repeats R`` each side is timed R times and the median is reported. items/s = items / seconds;
the ratio is Frugal items/s / lm-eval items/s. The lm-eval subprocess's model-load seconds and total wall
time are reported too, for reference.

``--batch-size B`` goes to both unchanged, but the unit differs: Frugal batches *items* (one prompt pass
per item, its KV cache shared by the item's choices), lm-eval's hf backend batches (context, choice)
*requests*, each run as its own full sequence (its logits cache shares one pass only among choices that
are a single token: the labels of a classification task often are). ``--lmeval-batch-size`` overrides
lm-eval's, e.g. to give it B x (number of choices) requests per batch.

``--cli-check`` also runs the real CLI once per model (``lm_eval --model hf --model_args
pretrained=<folder>,dtype=float32 --tasks ... --include_path ... --batch_size B --device cpu --limit N``,
its wall time includes task indexing and model load, so it is not used for items/s) and checks that it
reports the same acc and acc_norm as the timed API runs.

Setting up the lm-eval venv (``--setup`` does this; about 3 min; no CUDA torch is pulled)::

    python3 -m venv bench/.venv-lmeval                          # Python 3.11, as the project
    bench/.venv-lmeval/bin/pip install torch==2.13.0          # the CPU build, as the project venv
    bench/.venv-lmeval/bin/pip install "lm-eval[hf]==0.4.13" torch==2.13.0 transformers==5.23.0 \
        accelerate==1.15.0

(lm-eval 0.4.13 moved transformers/accelerate/peft into its ``[hf]`` extra: a bare ``pip install lm-eval``
cannot run ``--model hf``.) Everything runs offline (``HF_HUB_OFFLINE=1`` etc.).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LMEVAL_VENV = ROOT / "bench" / ".venv-lmeval"
LMEVAL_PY = LMEVAL_VENV / "bin" / "python"
LMEVAL_PIN = "lm-eval[hf]==0.4.13"
TORCH_PIN = "torch==2.13.0"
DEFAULT_TASKS = ("finance/numeracy", "finance/headline-sentiment")
OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_EVALUATE_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}

UTILS_PY = '''"""Generated by bench/lmeval_side_by_side.py: keep the suite's test items, in file order."""


def test_docs(dataset):
    return dataset.filter(lambda d: d["split"] == "test")
'''


# ------------------------------------------------------------------------------ lm-eval task files
def lmeval_task_name(ref: str) -> str:
    """finance/headline-sentiment -> frugal_finance_headline_sentiment."""
    return "frugal_" + ref.replace("/", "_").replace("-", "_")


def jinja_prompt(template: str) -> str:
    """Frugal's ``{field}`` template as Jinja that renders to the same string (``{{``/``}}`` are braces)."""
    parts: list[str] = []
    lit: list[str] = []

    def flush() -> None:
        s = "".join(lit)
        lit.clear()
        if s:
            parts.append("{% raw %}" + s + "{% endraw %}" if ("{" in s or "}" in s) else s)

    i = 0
    while i < len(template):
        if template.startswith("{{", i) or template.startswith("}}", i):
            lit.append(template[i])
            i += 2
        elif template[i] == "{":
            j = template.index("}", i)
            flush()
            parts.append("{{ " + template[i + 1:j] + " }}")
            i = j + 1
        else:
            lit.append(template[i])
            i += 1
    flush()
    return "".join(parts)


def write_task_yaml(task, ref: str, tasks_dir: Path) -> str:
    """One lm-eval multiple_choice task over the suite's own JSONL, scoring what Frugal scores."""
    import yaml

    data = Path(task.source)
    if data.suffix.lower() != ".jsonl" or not data.is_file():
        raise SystemExit(f"{ref}: only suites with a local JSONL file are supported here (got {task.source!r})")
    name = lmeval_task_name(ref)
    cfg: dict = {
        "task": name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": jinja_prompt(task.prompt),
    }
    if task.type == "multiple_choice":
        cfg["doc_to_choice"] = "choices"
        cfg["doc_to_target"] = "answer"
    else:
        cfg["doc_to_choice"] = [lab.text for lab in task.labels]
        names = json.dumps([lab.name for lab in task.labels], ensure_ascii=False)
        cfg["doc_to_target"] = "{{ " + names + ".index(label) }}"
    cfg.update({
        "target_delimiter": " ",
        "fewshot_delimiter": "\n\n",
        "num_fewshot": 0,
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": 1.0, "generated_by": "bench/lmeval_side_by_side.py", "frugal_task": ref},
    })
    text = yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True, width=10**6)
    text += "process_docs: !function utils.test_docs\n"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / "utils.py").write_text(UTILS_PY)
    (tasks_dir / f"{name}.yaml").write_text(text)
    return name


# --------------------------------------------------------------------------- lm-eval side (driver)
def driver(spec_path: str) -> int:
    """Runs inside bench/.venv-lmeval: load HFLM, then time lm_eval.evaluator.evaluate per task."""
    import random

    import numpy as np
    import torch

    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    import lm_eval
    from lm_eval.evaluator import evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    spec = json.loads(Path(spec_path).read_text())
    random.seed(0)  # the seeds simple_evaluate sets
    np.random.seed(1234)
    torch.manual_seed(1234)
    t0 = time.perf_counter()
    lm = HFLM(pretrained=spec["model_path"], dtype="float32", device="cpu", batch_size=spec["batch_size"])
    load_s = time.perf_counter() - t0
    tm = TaskManager(include_path=spec["include_path"], include_defaults=False)
    out: dict = {"lm_eval": lm_eval.__version__, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "load_s": load_s, "tasks": {}}
    import transformers

    out["transformers"] = transformers.__version__
    for name in spec["tasks"]:
        loaded = tm.load([name])
        for t in loaded["tasks"].values():
            t.set_config(key="num_fewshot", value=0)
            t.set_fewshot_seed(seed=1234)
        kw = {"bootstrap_iters": 0, "verbosity": "ERROR"}
        warm = spec["warmup"]
        if warm:
            evaluate(lm=lm, task_dict=loaded, limit=warm, log_samples=False, **kw)
        times, first = [], None
        for r in range(spec["repeats"]):
            t1 = time.perf_counter()
            res = evaluate(lm=lm, task_dict=loaded, limit=spec["limit"], log_samples=(r == 0), **kw)
            times.append(time.perf_counter() - t1)
            if first is None:
                first = res
        assert first is not None
        metrics = first["results"][name]
        samples = []
        for s in sorted(first["samples"][name], key=lambda s: s["doc_id"]):
            args = [a if isinstance(a, list | tuple) else list(a.values()) for a in s["arguments"]]
            if s["arguments"] and isinstance(s["arguments"][0], dict):
                args = [[a["arg_0"], a["arg_1"]] for a in s["arguments"]]
            lls = [float(r[0][0]) if isinstance(r[0], list | tuple) else float(r[0]) for r in s["resps"]]
            samples.append({"doc_id": s["doc_id"], "id": s["doc"].get("id"), "target": s["target"],
                            "contexts": [a[0] for a in args], "continuations": [a[1] for a in args],
                            "lls": lls, "acc": s.get("acc"), "acc_norm": s.get("acc_norm")})
        out["tasks"][name] = {"seconds": times, "n_items": len(samples), "acc": metrics.get("acc,none"),
                              "acc_norm": metrics.get("acc_norm,none"), "samples": samples}
    Path(spec["out"]).write_text(json.dumps(out))
    return 0


def bench_env(threads: int, work: Path) -> dict[str, str]:
    env = {**os.environ, **OFFLINE, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "BENCH_THREADS": str(threads), "HF_DATASETS_CACHE": str(work / "hf-datasets-cache")}
    env.pop("PYTHONPATH", None)
    return env


def run_lmeval(model_path: str, names: list[str], tasks_dir: Path, work: Path, args: argparse.Namespace,
               tag: str) -> dict:
    spec = {"model_path": model_path, "tasks": names, "include_path": str(tasks_dir), "limit": args.limit,
            "batch_size": args.lmeval_batch_size or args.batch_size, "repeats": args.repeats,
            "warmup": min(args.batch_size, args.limit or args.batch_size), "out": str(work / f"lmeval-{tag}.json")}
    spec_path = work / f"spec-{tag}.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    t0 = time.perf_counter()
    proc = subprocess.run([str(LMEVAL_PY), str(Path(__file__).resolve()), "--_driver", str(spec_path)],
                          env=bench_env(args.threads, work), cwd=str(work), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / f"lmeval-{tag}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"lm-eval failed (exit {proc.returncode}); log: {work / f'lmeval-{tag}.log'}\n"
                         + (proc.stdout + proc.stderr)[-3000:])
    out = json.loads(Path(spec["out"]).read_text())
    out["subprocess_wall_s"] = wall
    return out


def cli_command(model_path: str, names: list[str], tasks_dir: Path, args: argparse.Namespace,
                out_dir: Path | None = None) -> list[str]:
    cmd = [str(LMEVAL_VENV / "bin" / "lm_eval"), "--model", "hf", "--model_args",
           f"pretrained={model_path},dtype=float32", "--tasks", ",".join(names), "--include_path",
           str(tasks_dir), "--batch_size", str(args.lmeval_batch_size or args.batch_size), "--device", "cpu"]
    if args.limit:
        cmd += ["--limit", str(args.limit)]
    if out_dir is not None:
        cmd += ["--output_path", str(out_dir)]
    return cmd


def run_cli(model_path: str, names: list[str], tasks_dir: Path, work: Path, args: argparse.Namespace,
            tag: str) -> dict:
    out_dir = work / f"cli-{tag}"
    cmd = cli_command(model_path, names, tasks_dir, args, out_dir)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=bench_env(args.threads, work), cwd=str(work), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    (work / f"cli-{tag}.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"lm_eval CLI failed (exit {proc.returncode}); log: {work / f'cli-{tag}.log'}")
    files = sorted(out_dir.rglob("results_*.json"), key=lambda p: p.stat().st_mtime)
    res = json.loads(files[-1].read_text())["results"]
    return {"wall_s": wall, "command": " ".join(cmd),
            "tasks": {n: {"acc": res[n].get("acc,none"), "acc_norm": res[n].get("acc_norm,none")} for n in names}}


# ---------------------------------------------------------------------------------- Frugal side
def run_frugal(model: str, tasks: list, args: argparse.Namespace) -> dict:
    """Load once (untimed); per task warm up, then time render + tokenise + score."""
    import torch

    from evaluator.models import default_registry_path, get_spec, load_registry, resolve
    from evaluator.scoring import encode_requests, load, score_causal
    from evaluator.variants import resolve_variant

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    spec = get_spec(model, load_registry(default_registry_path()))
    if spec.kind != "causal-lm":
        raise SystemExit(f"{model}: lm-eval's log-likelihood comparison needs a causal LM (got {spec.kind})")
    resolved = resolve(spec)
    t0 = time.perf_counter()
    lm = load(resolved, resolve_variant("fp32"), "cpu")
    out: dict = {"load_s": time.perf_counter() - t0, "model_path": resolved.location, "tasks": {}}
    bs = args.batch_size
    for ref, task in tasks:
        items = task.select(args.limit)
        warm = items[: min(bs, len(items))]
        score_causal(lm, task, warm, bs, encode_requests(lm.tokenizer, task, warm))
        times, first = [], None
        for _ in range(args.repeats):
            t1 = time.perf_counter()
            reqs = encode_requests(lm.tokenizer, task, items)
            scores = score_causal(lm, task, items, bs, reqs)
            times.append(time.perf_counter() - t1)
            first = first or scores
        assert first is not None
        n = len(first)
        out["tasks"][ref] = {
            "seconds": times, "n_items": n, "acc": sum(s.correct for s in first) / n,
            "acc_norm": sum(s.correct_norm for s in first) / n,
            "items": [{"id": it.id, "prompt": task.render_prompt(it),
                       "continuations": [" " + c for c in it.choices], "gold": s.gold, "pred": s.pred,
                       "pred_norm": s.pred_norm, "lls": list(s.scores)} for it, s in zip(items, first, strict=True)]}
    del lm
    return out


# --------------------------------------------------------------------------------------- compare
def compare(fr: dict, le: dict) -> dict:
    """Per-item agreement: same inputs, same predictions, log-likelihood differences."""
    import math

    def argmax(xs: list[float]) -> int:
        return max(range(len(xs)), key=lambda k: xs[k] if not math.isnan(xs[k]) else -math.inf)

    fitems, lsamp = fr["items"], le["samples"]
    mism: list[str] = []
    if len(fitems) != len(lsamp):
        mism.append(f"item count: Frugal {len(fitems)}, lm-eval {len(lsamp)}")
    same_pred = same_norm = 0
    max_dll = 0.0
    for fi, ls in zip(fitems, lsamp, strict=False):
        if fi["id"] != ls["id"]:
            mism.append(f"item order: Frugal {fi['id']} vs lm-eval {ls['id']}")
        if any(c != fi["prompt"] for c in ls["contexts"]):
            mism.append(f"{fi['id']}: context differs: {ls['contexts'][0]!r} vs {fi['prompt']!r}")
        if ls["continuations"] != fi["continuations"]:
            mism.append(f"{fi['id']}: continuations differ: {ls['continuations']} vs {fi['continuations']}")
        if ls["target"] != fi["gold"]:
            mism.append(f"{fi['id']}: gold differs: lm-eval {ls['target']} vs Frugal {fi['gold']}")
        lens = [len(c) - 1 for c in fi["continuations"]]
        lp, lpn = argmax(ls["lls"]), argmax([x / max(1, n) for x, n in zip(ls["lls"], lens, strict=True)])
        same_pred += lp == fi["pred"]
        same_norm += lpn == fi["pred_norm"]
        if len(ls["lls"]) == len(fi["lls"]):
            max_dll = max(max_dll, *(abs(a - b) for a, b in zip(ls["lls"], fi["lls"], strict=True)))
    n = min(len(fitems), len(lsamp))
    return {"inputs_identical": not mism, "mismatches": mism[:20], "n_compared": n, "same_pred": same_pred,
            "same_pred_norm": same_norm, "max_abs_dll": max_dll}


# ------------------------------------------------------------------------------------------ main
def setup_venv() -> None:
    py = sys.executable  # the project venv's interpreter: the new venv gets the same base Python
    pip = str(LMEVAL_VENV / "bin" / "pip")
    import transformers

    try:
        import accelerate
        acc = [f"accelerate=={accelerate.__version__}"]
    except ImportError:
        acc = []
    for cmd in ([py, "-m", "venv", str(LMEVAL_VENV)], [pip, "install", "-q", "--upgrade", "pip"],
                [pip, "install", "-q", TORCH_PIN],
                [pip, "install", "-q", LMEVAL_PIN, TORCH_PIN, f"transformers=={transformers.__version__}", *acc]):
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def fmt(x: float | None, spec: str = ".3f") -> str:
    return "n/a" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", action="append", help="Frugal model name (causal LM); repeatable")
    ap.add_argument("--task", action="append", help=f"suite/task; repeatable (default: {', '.join(DEFAULT_TASKS)})")
    ap.add_argument("--limit", type=int, default=None, help="first N test items of each task (default: all)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lmeval-batch-size", type=int, default=None, help="override lm-eval's batch size")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=1, help="timed passes per side and task (median reported)")
    ap.add_argument("--cli-check", action="store_true", help="also run the lm_eval CLI and compare its accuracies")
    ap.add_argument("--setup", action="store_true", help="create bench/.venv-lmeval first")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "lmeval.md"))
    ap.add_argument("--_driver", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._driver:
        return driver(args._driver)
    for k, v in {**OFFLINE, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}.items():
        os.environ[k] = v  # before torch is imported
    if args.setup:
        setup_venv()
    if not LMEVAL_PY.is_file():
        raise SystemExit(f"no lm-eval venv at {LMEVAL_VENV}: run with --setup (see this file's docstring)")
    models = args.model or ["smollm2-135m"]
    refs = args.task or list(DEFAULT_TASKS)
    sys.path.insert(0, str(ROOT))
    from evaluator import __version__ as frugal_version
    from evaluator.suite import load_suite

    out_md = Path(args.out)
    work = out_md.parent / "lmeval-work"
    tasks_dir = work / "tasks"
    work.mkdir(parents=True, exist_ok=True)
    tasks, names = [], []
    for ref in refs:
        suite_name, _, task_name = ref.partition("/")
        suite = load_suite(suite_name)
        match = [t for t in suite.tasks if t.name == task_name]
        if not match:
            raise SystemExit(f"{ref}: no such task (suite {suite_name} has {[t.name for t in suite.tasks]})")
        tasks.append((ref, match[0]))
        names.append(write_task_yaml(match[0], ref, tasks_dir))

    rows, record = [], {"models": {}}
    for model in models:
        print(f"[{model}] Frugal ...", file=sys.stderr, flush=True)
        fr = run_frugal(model, tasks, args)
        print(f"[{model}] lm-eval ...", file=sys.stderr, flush=True)
        le = run_lmeval(fr["model_path"], names, tasks_dir, work, args, model)
        cli = run_cli(fr["model_path"], names, tasks_dir, work, args, model) if args.cli_check else None
        per = {}
        for (ref, _), name in zip(tasks, names, strict=True):
            f, lt = fr["tasks"][ref], le["tasks"][name]
            fs, ls = statistics.median(f["seconds"]), statistics.median(lt["seconds"])
            cmp_ = compare(f, lt)
            row = {"model": model, "task": ref, "n_items": f["n_items"], "frugal_s": fs, "lmeval_s": ls,
                   "frugal_items_s": f["n_items"] / fs, "lmeval_items_s": lt["n_items"] / ls,
                   "frugal_acc": f["acc"], "frugal_acc_norm": f["acc_norm"], "lmeval_acc": lt["acc"],
                   "lmeval_acc_norm": lt["acc_norm"], **cmp_}
            row["ratio"] = row["frugal_items_s"] / row["lmeval_items_s"]
            if cli:
                c = cli["tasks"][name]
                row["cli_acc"], row["cli_acc_norm"] = c["acc"], c["acc_norm"]
                row["cli_agrees"] = (c["acc"], c["acc_norm"]) == (lt["acc"], lt["acc_norm"])
            rows.append(row)
            per[ref] = {"frugal": f, "lmeval": lt, "compare": cmp_}
        record["models"][model] = {"model_path": fr["model_path"], "frugal_load_s": fr["load_s"],
                                   "lmeval_load_s": le["load_s"], "lmeval_subprocess_wall_s": le["subprocess_wall_s"],
                                   "cli": cli, "tasks": per}
        record["lm_eval_version"], record["lmeval_torch"] = le["lm_eval"], le["torch"]
        record["lmeval_transformers"], record["lmeval_threads"] = le["transformers"], le["threads"]

    import torch
    import transformers

    cmd = "python bench/lmeval_side_by_side.py " + " ".join(sys.argv[1:])
    record.update({"command": cmd, "rows": rows, "date": time.strftime("%Y-%m-%d %H:%M"), "cpu": cpu_model(),
                   "cpu_count": os.cpu_count(), "threads": args.threads, "batch_size": args.batch_size,
                   "lmeval_batch_size": args.lmeval_batch_size or args.batch_size, "repeats": args.repeats,
                   "limit": args.limit, "frugal": frugal_version, "torch": torch.__version__,
                   "transformers": transformers.__version__,
                   "lmeval_cli_equivalent": " ".join(cli_command("<model folder>", names, tasks_dir, args))})
    lines = [
        f"Machine: {record['cpu']}, {record['cpu_count']} cores; {args.threads} torch threads on both sides; "
        f"{record['date']}. Frugal {frugal_version} (torch {torch.__version__}, transformers "
        f"{transformers.__version__}) vs lm-evaluation-harness {record['lm_eval_version']} (hf backend; torch "
        f"{record['lmeval_torch']}, transformers {record['lmeval_transformers']}). Command: `{cmd}`.",
        "",
        f"- Same items, prompt and `\" \" + choice` continuations on both sides (checked per item: "
        f"*inputs identical*); 0-shot, fp32, CPU, batch size {args.batch_size} (Frugal: items; lm-eval: "
        f"{record['lmeval_batch_size']} (context, choice) requests), "
        f"{'all' if args.limit is None else f'first {args.limit}'} test items per task.",
        f"- items/s: scoring only, model load excluded on both sides; includes prompt rendering, tokenising, "
        f"forward passes and metrics; after one warm-up on {min(args.batch_size, args.limit or args.batch_size)} "
        f"items; median of {args.repeats} timed pass(es). Ratio = Frugal / lm-eval.",
        "",
        "| model | task | items | Frugal items/s | lm-eval items/s | ratio | Frugal acc | lm-eval acc | "
        "Frugal acc_norm | lm-eval acc_norm | same pred (acc / norm) | max abs. Δ loglik | inputs identical |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['task']} | {r['n_items']} | {r['frugal_items_s']:.1f} | {r['lmeval_items_s']:.1f} | "
            f"**{r['ratio']:.2f}x** | {fmt(r['frugal_acc'])} | {fmt(r['lmeval_acc'])} | {fmt(r['frugal_acc_norm'])} | "
            f"{fmt(r['lmeval_acc_norm'])} | {r['same_pred']}/{r['n_compared']} / "
            f"{r['same_pred_norm']}/{r['n_compared']} | {r['max_abs_dll']:.2g} | "
            f"{'yes' if r['inputs_identical'] else 'NO'} |")
    lines += ["", "Model load (excluded above), seconds: " + "; ".join(
        f"{m}: Frugal {v['frugal_load_s']:.1f}, lm-eval {v['lmeval_load_s']:.1f} (lm-eval subprocess wall "
        f"{v['lmeval_subprocess_wall_s']:.1f})" for m, v in record["models"].items()) + "."]
    if args.cli_check:
        ok = all(r.get("cli_agrees") for r in rows)
        detail = "; ".join(f"{r['model']} {r['task']}: {fmt(r['cli_acc'])} / {fmt(r['cli_acc_norm'])}" for r in rows)
        verdict = "same acc and acc_norm as the timed runs" if ok else "DIFFERS from the timed runs"
        lines.append(f"- `lm_eval` CLI check (acc / acc_norm): {verdict} ({detail}).")
    for r in rows:
        for m in r["mismatches"]:
            lines.append(f"- MISMATCH {r['model']} {r['task']}: {m}")
    lines += ["", f"Equivalent lm-eval CLI: `{record['lmeval_cli_equivalent']}` (task YAMLs generated into "
              f"`{tasks_dir.relative_to(ROOT) if tasks_dir.is_relative_to(ROOT) else tasks_dir}`)."]
    out_md.parent.mkdir(parents=True, exist_ok=True)
    out_md.write_text("\n".join(lines) + "\n")
    out_md.with_suffix(".json").write_text(json.dumps(record, indent=1, default=str))
    print("\n".join(lines))
    return 0 if all(r["inputs_identical"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
