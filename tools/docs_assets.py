"""Write the README's screenshot and the sample report from a run of the default demo.

    make demo           # frugal run --config demo.yaml --out out/demo
    make docs-assets    # this script: docs/img/frontier.png and docs/sample-report.html

The screenshot is taken in a real browser (Debian's chromium via playwright) from the app's Frontier page,
opened by its permalink (``/frontier?run=<id>&suite=<suite>``) against the store the run was written to.
The run must cover the grid in demo.yaml (checked; ``--any-run`` skips the check).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tools.appserver import CHROMIUM, CHROMIUM_ARGS, serve_app  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MAX_REPORT_BYTES = 6 * 1024 * 1024


def _check_is_demo(result, demo_yaml: Path) -> None:
    """Refuse a run that does not cover the default grid (a quick demo, a partial run)."""
    from evaluator.config import load_config

    cfg = load_config(demo_yaml)
    want = {(s, m, v) for s in cfg.suites for m in cfg.models for v in cfg.variants}
    have = {(c.suite, c.model, c.variant) for c in result.cells if c.status == "ok"}
    missing = sorted(want - have)
    if missing:
        shown = ", ".join(":".join(x) for x in missing[:6])
        raise SystemExit(f"run {result.run_id} is not the default demo ({demo_yaml.name}): {len(missing)} "
                         f"(suite, model, variant) combinations missing or failed, e.g. {shown}")
    limits = {c.n_items for c in result.cells if c.status == "ok"}
    if cfg.limit and max(limits) > cfg.limit:
        raise SystemExit(f"run {result.run_id} has tasks of {max(limits)} items; {demo_yaml.name} says "
                         f"limit {cfg.limit}")


def write_report(result, out: Path) -> int:
    """The self-contained HTML report; returns its size in bytes (must stay under 6 MB)."""
    from evaluator.report.writers import write_report_html

    write_report_html(result, out)
    size = out.stat().st_size
    if size >= MAX_REPORT_BYTES:
        raise SystemExit(f"{out} is {size / 1e6:.1f} MB, over the 6 MB the docs allow")
    return size


def screenshot_frontier(run_id: str, store: str, suite: str, out: Path, width: int = 1280,
                        height: int = 1500) -> None:
    """Open the Frontier page for ``run_id`` by its permalink and save a screenshot of the viewport."""
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium (or make chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        env = {"FRUGAL_STORE": store, "FRUGAL_MODELS": str(ROOT / "models.yaml")}
        with serve_app(env, Path(tmp) / "streamlit.log") as url, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            try:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/frontier?run={run_id}&suite={suite}", wait_until="domcontentloaded")
                expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=120_000)
                expect(page.get_by_text("Recommendation.")).to_be_visible(timeout=60_000)
                body = page.inner_text("body")
                if "is not in this store" in body or run_id not in body:
                    raise SystemExit(f"the Frontier page did not open run {run_id} from {store}")
                page.wait_for_timeout(2000)  # fonts and the plot's transitions
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out))
            finally:
                browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default=str(ROOT / "out" / "demo" / "results.json"),
                    help="results.json of the demo run (default: out/demo/results.json)")
    ap.add_argument("--store", help="the store the run lives in (default: FRUGAL_STORE, else "
                    "FRUGAL_HOME/results.sqlite)")
    ap.add_argument("--suite", default="finance", help="suite shown in the screenshot (default: finance)")
    ap.add_argument("--demo-config", default=str(ROOT / "demo.yaml"))
    ap.add_argument("--any-run", action="store_true", help="do not check that the run is the default demo")
    ap.add_argument("--report", default=str(ROOT / "docs" / "sample-report.html"))
    ap.add_argument("--image", default=str(ROOT / "docs" / "img" / "frontier.png"))
    args = ap.parse_args(argv)

    from evaluator.runner import load_result

    results = Path(args.results)
    if not results.is_file():
        raise SystemExit(f"{results} does not exist: run `make demo` first")
    result = load_result(str(results))
    if not args.any_run:
        _check_is_demo(result, Path(args.demo_config))
    size = write_report(result, Path(args.report))
    print(f"wrote {args.report} ({size / 1e6:.2f} MB, run {result.run_id}, {len(result.cells)} cells)")
    from evaluator.store import Store, default_store_path, is_store_file

    store = args.store or str(default_store_path())
    if not is_store_file(store):
        raise SystemExit(f"{store} is not a results store (pass --store, or set FRUGAL_STORE as for `make demo`)")
    if result.run_id not in {r["run_id"] for r in Store(store).list_runs()}:
        raise SystemExit(f"run {result.run_id} is not in {store} (pass --store, or set FRUGAL_STORE as for "
                         "`make demo`)")
    screenshot_frontier(result.run_id, store, args.suite, Path(args.image))
    print(f"wrote {args.image} (Frontier page, suite {args.suite}, run {result.run_id})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
