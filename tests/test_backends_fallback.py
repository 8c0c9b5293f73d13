"""Variants know the CPU: each declares what its fast kernel needs, and cells that ran without it say so."""

from __future__ import annotations

import pytest

from evaluator.environment import present_flags
from evaluator.planner import fallback_parts
from evaluator.variants import resolve_variant

AVX2_ONLY = frozenset({"avx2", "fma", "f16c"})


@pytest.mark.parametrize("variant,flags,device,slow", [
    ("bf16", AVX2_ONLY, "cpu", True), ("bf16", {"avx512_bf16"}, "cpu", False), ("bf16", {"amx_bf16"}, "cpu", False),
    ("bf16", AVX2_ONLY, "cuda", False), ("fp16", {"avx512_bf16"}, "cpu", True),
    ("int8-dynamic", AVX2_ONLY, "cpu", True), ("int8-dynamic", {"avx_vnni"}, "cpu", False),
    ("bnb-nf4", {"amx_int8", "avx512_bf16"}, "cpu", True), ("bnb-int8", AVX2_ONLY, "cuda", False),
    ("fp32", AVX2_ONLY, "cpu", False), ("gguf-q4", AVX2_ONLY, "cpu", False), ("ort-int8", AVX2_ONLY, "cpu", False),
    ("prune-structured-25+int8-dynamic", AVX2_ONLY, "cpu", True)])
def test_a_variant_says_when_it_would_run_on_a_fallback_kernel(variant, flags, device, slow):
    why = resolve_variant(variant).fallback(device, flags)
    assert (why is not None) == slow
    assert (bool(fallback_parts(variant, flags, device))) == slow  # the planner asks the same declarations
    if slow:
        assert variant.split("+")[-1] in why


def test_a_cell_on_a_fallback_kernel_is_flagged_in_results_and_summary(pulled, tmp_path):
    from evaluator.config import RunConfig
    from evaluator.report.writers import render_report_html, render_summary_md
    from evaluator.runner import run

    variant = "fp16" if resolve_variant("fp16").fallback("cpu", present_flags()) else "bnb-nf4"
    cfg = RunConfig(suites=("finance",), models=("minilm-l6",), variants=("fp32", variant), limit=3, repeats=1,
                    batch_size=8, device="cpu", meter="estimate", idle_s=0, store=str(tmp_path / "s.sqlite"))
    result = run(cfg)
    ok = [c for c in result.cells if c.status == "ok"]
    assert ok
    for c in ok:
        assert c.fallback_kernel == (c.variant == variant)
        assert (c.fallback_reason is not None) == (c.variant == variant)
        assert c.backend == "torch" and c.backend_version.startswith("torch ")
    assert "Cells on a fallback kernel" in render_summary_md(result)
    assert "Fallback kernel" in render_report_html(result)
