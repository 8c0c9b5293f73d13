"""tools/docs_assets.py: the README screenshot and the sample report come from the default demo only."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import docs_assets
from tools.appserver import CHROMIUM

ROOT = Path(__file__).resolve().parent.parent


def test_a_run_that_is_not_the_default_demo_is_refused(small_run):
    with pytest.raises(SystemExit, match="is not the default demo"):
        docs_assets._check_is_demo(small_run, ROOT / "demo.yaml")


def test_the_default_grid_passes_the_check(small_run, tmp_path):
    demo = tmp_path / "demo.yaml"  # small_run's own grid, written as a demo config
    demo.write_text("suites: [finance, health]\nmodels: [minilm-l6, smollm2-135m]\nvariants: [fp32, bf16]\n"
                    "limit: 6\n")
    docs_assets._check_is_demo(small_run, demo)
    demo.write_text(demo.read_text().replace("limit: 6", "limit: 3"))
    with pytest.raises(SystemExit, match="limit 3"):
        docs_assets._check_is_demo(small_run, demo)


def test_report_over_six_megabytes_is_refused(small_run, tmp_path, monkeypatch):
    size = docs_assets.write_report(small_run, tmp_path / "r.html")
    assert 0 < size < docs_assets.MAX_REPORT_BYTES
    monkeypatch.setattr(docs_assets, "MAX_REPORT_BYTES", size)
    with pytest.raises(SystemExit, match="over the 6 MB"):
        docs_assets.write_report(small_run, tmp_path / "r.html")


@pytest.mark.browser
def test_screenshot_of_the_frontier_page(small_run, tmp_path, output_dir):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    pytest.importorskip("playwright.sync_api")
    from PIL import Image

    out = output_dir / "frontier-docs.png"
    docs_assets.screenshot_frontier(small_run.run_id, small_run.store_path, "health", out, height=900)
    img = Image.open(out)
    assert img.size == (1280, 900)
    assert len(set(img.convert("L").resize((64, 45)).getdata())) > 20  # a page was drawn, not a blank
    with pytest.raises(SystemExit, match="did not open run"):
        docs_assets.screenshot_frontier("no-such-run", small_run.store_path, "health", tmp_path / "x.png")
