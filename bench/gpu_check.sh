#!/usr/bin/env bash
# GPU check (issue 14): one prepared script, under 8 minutes, for the day a CUDA GPU is lent.
#
# On a CUDA machine it
#   1. checks Frugal's NVML meter (total-energy counter) against an independent reading: NVML power sampled
#      every 20 ms and integrated over the same window, while the GPU runs matmuls (agreement within 2 %);
#   2. runs bf16, fp16, bnb-int8 and bnb-nf4 (torch, CUDA) and ort-fp32 on the ONNX Runtime CUDA provider on
#      smollm2-135m and qwen2.5-0.5b, a few items of the finance suite, meter nvml;
#   3. writes its figures as a section of docs/benchmarks.md (between the GPU-CHECK markers) and
#      out/bench/gpu_check.{md,json}.
# Without a GPU it runs its CPU-side steps (imports, meter registry, models present, the variants' device
# checks) and exits 0 saying that no GPU is present.
#
#   bash bench/gpu_check.sh            (PY=path/to/python, GPU_CHECK_LIMIT=5, GPU_CHECK_DOCS=docs/benchmarks.md)
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 HF_EVALUATE_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
export GPU_CHECK_LIMIT=${GPU_CHECK_LIMIT:-5} GPU_CHECK_DOCS=${GPU_CHECK_DOCS:-docs/benchmarks.md}
export GPU_CHECK_OUT=${GPU_CHECK_OUT:-out/bench/gpu_check.md}
T0=$(date +%s)

echo "gpu_check: CPU-side steps"
"$PY" - <<'EOF' || { echo "gpu_check: CPU-side steps failed"; exit 1; }
from evaluator.backends import BACKENDS, backend_availability
from evaluator.environment import environment, present_flags
from evaluator.meters import METERS
from evaluator.models import builtin_registry, resolve
from evaluator.variants import resolve_variant

assert "nvml" in METERS, "the nvml meter is not registered"
for v in ("bf16", "fp16", "bnb-int8", "bnb-nf4", "ort-fp32"):
    resolve_variant(v)
env = environment(1, "cpu")
print(f"  cpu {env['cpu_model']}, flags {', '.join(sorted(present_flags()))}")
for b in BACKENDS:
    print(f"  backend {b}: {backend_availability(b) or 'available'}")
reg = builtin_registry()
for m in ("smollm2-135m", "qwen2.5-0.5b"):
    try:
        resolve(reg[m])
        print(f"  model {m}: in the cache")
    except Exception as exc:  # noqa: BLE001
        print(f"  model {m}: {exc}")
EOF

if ! "$PY" - <<'EOF'
import sys
try:
    import pynvml
    pynvml.nvmlInit()
    n = pynvml.nvmlDeviceGetCount()
except Exception:
    n = 0
sys.exit(0 if n > 0 else 1)
EOF
then
  echo "gpu_check: no GPU is present (NVML finds no device); the CPU-side steps passed. Nothing else to check here."
  exit 0
fi

echo "gpu_check: GPU present; running the GPU steps (budget 7 min)"
timeout 420 "$PY" - <<'EOF'
import json, os, subprocess, sys, tempfile, threading, time
from pathlib import Path

import pynvml

out_md, docs, limit = Path(os.environ["GPU_CHECK_OUT"]), Path(os.environ["GPU_CHECK_DOCS"]), os.environ["GPU_CHECK_LIMIT"]
pynvml.nvmlInit()
h = pynvml.nvmlDeviceGetHandleByIndex(0)
gpu = pynvml.nvmlDeviceGetName(h)
gpu = gpu.decode() if isinstance(gpu, bytes) else gpu
lines = ["## GPU check (bench/gpu_check.sh)", "", f"GPU: {gpu}; date {time.strftime('%Y-%m-%d %H:%M')}.", ""]
raw = {"gpu": gpu}

# 1. NVML meter vs power sampled and integrated over the same window
from evaluator.meters import create_meter

try:
    import torch
    cuda = torch.cuda.is_available()
except Exception:
    cuda = False
samples, stop = [], threading.Event()

def sample():
    while not stop.is_set():
        samples.append((time.perf_counter(), pynvml.nvmlDeviceGetPowerUsage(h) / 1000.0))
        time.sleep(0.02)

meter = create_meter("nvml")
if cuda:  # warm up outside the window
    a = torch.randn(4096, 4096, device="cuda"); (a @ a).sum().item()
th = threading.Thread(target=sample); th.start(); time.sleep(0.2)
meter.begin("check")
t_begin = time.perf_counter()
t_end_work = t_begin + 5.0
while time.perf_counter() < t_end_work:
    if cuda:
        for _ in range(20):
            a = a @ a / 64.0
        torch.cuda.synchronize()
    else:
        time.sleep(0.05)
m = meter.end("check")
t_end = time.perf_counter()
time.sleep(0.2); stop.set(); th.join()
win = [(t, p) for t, p in samples if t_begin - 0.02 <= t <= t_end + 0.02]
integ = sum((t2 - t1) * (p1 + p2) / 2 for (t1, p1), (t2, p2) in zip(win, win[1:]))
integ *= (t_end - t_begin) / max(1e-9, win[-1][0] - win[0][0])
ratio = (m.energy_j or 0) / integ if integ else float("nan")
ok = abs(ratio - 1) <= 0.02
raw["nvml_check"] = {"meter_j": m.energy_j, "integrated_j": integ, "ratio": ratio, "samples": len(win)}
lines += [f"NVML meter vs sampled power integrated over the same {t_end - t_begin:.1f} s window "
          f"({'matmuls on the GPU' if cuda else 'idle GPU: torch has no CUDA here'}): meter {m.energy_j:.1f} J, "
          f"integrated {integ:.1f} J ({len(win)} samples), ratio {ratio:.4f}: {'within' if ok else 'NOT within'} 2 %.", ""]

# 2. variants on CUDA, a few items
rows = []
store = Path(tempfile.mkdtemp()) / "store.sqlite"
for model in ("smollm2-135m", "qwen2.5-0.5b"):
    for variant, device in (("fp32", "cuda"), ("bf16", "cuda"), ("fp16", "cuda"), ("bnb-int8", "cuda"),
                            ("bnb-nf4", "cuda"), ("ort-fp32", "cuda")):
        cmd = [sys.executable, "-m", "evaluator.cli", "run", "--suite", "finance", "--model", model, "--variant",
               variant, "--device", device, "--limit", limit, "--repeats", "1", "--meter", "nvml", "--store",
               str(store), "--idle-s", "1"]
        t0 = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        rows.append((model, variant, done.returncode, round(time.time() - t0, 1), (done.stderr or "").strip()[-200:]))
        print(rows[-1], flush=True)
from evaluator.store import Store

st = Store(str(store), readonly=True)
cells = [c for r in st.list_runs() for c in st.cells(r["run_id"])]
lines += ["| model | variant | task | status | accuracy | J / 1,000 items (nvml) | duration s |",
          "|---|---|---|---|--:|--:|--:|"]
for c in cells:
    acc = "–" if c.accuracy is None else f"{c.accuracy:.2f}"
    e = "–" if c.energy_j_per_1k is None else f"{c.energy_j_per_1k:,.0f}"
    d = "–" if c.duration_s is None else f"{c.duration_s:.2f}"
    why = "" if c.status == "ok" else f" ({(c.error or '')[:80]})"
    lines.append(f"| {c.model} | {c.variant} | {c.task} | {c.status}{why} | {acc} | {e} | {d} |")
raw["runs"] = rows
raw["cells"] = [c.to_dict() for c in cells]
out_md.parent.mkdir(parents=True, exist_ok=True)
out_md.write_text("\n".join(lines) + "\n")
out_md.with_suffix(".json").write_text(json.dumps(raw, indent=1, default=str))
text = docs.read_text() if docs.is_file() else ""
begin, end = "<!-- GPU-CHECK:BEGIN -->", "<!-- GPU-CHECK:END -->"
block = begin + "\n" + "\n".join(lines) + "\n" + end
text = (text[:text.index(begin)] + block + text[text.index(end) + len(end):]) if begin in text else text + "\n" + block + "\n"
docs.write_text(text)
print("\n".join(lines))
sys.exit(0 if ok else 3)
EOF
rc=$?
echo "gpu_check: done in $(( $(date +%s) - T0 )) s (exit $rc)"
exit $rc
