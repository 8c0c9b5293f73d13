"""End to end in a real browser: start the app, click "Run the quick demo", wait for the run, open the
Frontier page, check the chart and the recommendation, and save screenshots.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``) and the playwright
package (never ``playwright install``). Takes as long as the quick demo runs (minutes on a small CPU).
docs/img/frontier.png comes from the default demo instead: ``make docs-assets`` (tools/docs_assets.py).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tools.appserver import CHROMIUM, AppServerError, serve_app
from tools.appserver import CHROMIUM_ARGS as ARGS

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT_S = float(os.environ.get("FRUGAL_BROWSER_RUN_TIMEOUT_S", 1500))

pytestmark = pytest.mark.browser


def _stop_jobs(home: Path) -> None:
    """Leave no background run behind when the test fails half-way."""
    import json

    for f in (home / "jobs").glob("*.json") if (home / "jobs").is_dir() else []:
        try:
            pid = json.loads(f.read_text()).get("pid")
            if pid:
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass


@pytest.fixture
def server(tmp_path, pulled):
    """The app on a free port with a temp store and a temp FRUGAL_HOME that sees the real model cache."""
    from evaluator.models import frugal_home

    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    home = tmp_path / "home"
    home.mkdir()
    (home / "models").symlink_to(frugal_home() / "models", target_is_directory=True)
    env = {"FRUGAL_HOME": str(home), "FRUGAL_STORE": str(tmp_path / "store.sqlite"),
           "FRUGAL_MODELS": str(ROOT / "models.yaml")}
    log = tmp_path / "streamlit.log"
    try:
        with serve_app(env, log) as url:
            yield url, home, log
    except AppServerError as e:
        pytest.fail(str(e))
    finally:
        _stop_jobs(home)


def _wait_for_outcome(page, timeout_s: float) -> str:
    """Poll the Run page until the job says finished (or failed)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        body = page.inner_text("body")
        for word in ("Run finished with failures", "Run finished", "Run failed", "stopped unexpectedly",
                     "Run cancelled"):
            if word in body:
                return word
        page.wait_for_timeout(3000)
    return "timeout"


def test_quick_demo_end_to_end(server, output_dir):
    from playwright.sync_api import expect, sync_playwright

    url, _home, log = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(url, wait_until="domcontentloaded")
            demo = page.get_by_role("button", name="Run the quick demo")
            expect(demo).to_be_visible(timeout=60_000)
            expect(page.get_by_text("No runs yet")).to_be_visible()
            page.screenshot(path=str(output_dir / "run-empty.png"))
            demo.click()
            page.wait_for_url("**job=*", timeout=60_000)
            expect(page.get_by_text("Runs in progress")).to_be_visible(timeout=60_000)
            # a refresh keeps watching the job (it lives in its own process and in the URL)
            page.reload(wait_until="domcontentloaded")
            expect(page.get_by_text("background job", exact=False).first).to_be_visible(timeout=60_000)
            page.screenshot(path=str(output_dir / "run-progress.png"))
            outcome = _wait_for_outcome(page, RUN_TIMEOUT_S)
            page.screenshot(path=str(output_dir / "run-done.png"), full_page=True)
            assert outcome == "Run finished", (  # every cell of the quick demo must succeed
                f"{outcome}: {page.inner_text('body')[-2000:]}\n{log.read_text()[-2000:]}")

            page.goto(f"{url}/frontier", wait_until="domcontentloaded")
            expect(page.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=90_000)
            expect(page.get_by_text("Recommendation.")).to_be_visible(timeout=30_000)
            assert page.locator(".js-plotly-plot .scatterlayer .point").count() >= 4
            assert "run=" in page.url and "suite=" in page.url  # the permalink is in the address bar
            page.wait_for_timeout(1500)  # fonts and the plot's transitions
            page.screenshot(path=str(output_dir / "frontier-1280x800.png"))
            page.set_viewport_size({"width": 1280, "height": 1500})
            page.wait_for_timeout(1500)
            page.screenshot(path=str(output_dir / "frontier.png"))
            # the permalink reopens the same view in a fresh tab
            link = page.url
            other = browser.new_page(viewport={"width": 420, "height": 900})
            other.goto(link, wait_until="domcontentloaded")
            expect(other.locator(".js-plotly-plot .main-svg").first).to_be_visible(timeout=90_000)
            expect(other.get_by_text("Recommendation.")).to_be_visible(timeout=30_000)
            other.wait_for_timeout(1500)
            other.screenshot(path=str(output_dir / "frontier-narrow.png"), full_page=True)
        finally:
            browser.close()


def _seconds(text: str) -> float:
    """'2 min 05 s' / '45 s' / '1 h 02 min' -> seconds."""
    import re

    total = 0.0
    for value, unit in re.findall(r"(\d+)\s*(h|min|s)\b", text):
        total += int(value) * {"h": 3600, "min": 60, "s": 1}[unit]
    return total


def _wait_idle(page, timeout_s: float) -> None:
    """Poll the Run page until no job is active any more."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        body = page.inner_text("body")
        if "Latest job" in body and "Runs in progress" not in body:
            return
        page.wait_for_timeout(2000)
    raise AssertionError(f"jobs still active after {timeout_s} s: {page.inner_text('body')[-1500:]}")


def test_queue_estimate_and_malformed_csv(server, output_dir):
    """A second start while a run is going is queued; a measured estimate is within 30 % of the real run;
    a CSV with an unclosed quote is an error naming the line where the quoted field starts."""
    import re

    from playwright.sync_api import expect, sync_playwright

    url, _home, log = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url, wait_until="domcontentloaded")
            limit = page.get_by_role("spinbutton", name="Items per task (0 = all)")
            expect(limit).to_be_visible(timeout=60_000)
            limit.fill("5")
            limit.press("Enter")
            expect(page.get_by_text("0 = all:", exact=False)).to_be_attached(timeout=30_000)
            start = page.get_by_role("button", name="Start the run")
            expect(start).to_be_enabled(timeout=30_000)
            start.click()
            page.wait_for_url("**job=*", timeout=60_000)
            # a second start while the first runs: the button says so, and the job waits in the queue
            queue = page.get_by_role("button", name="Queue: start the run")
            expect(queue).to_be_visible(timeout=60_000)
            queue.click()
            expect(page.get_by_text("Queued: starts when", exact=False)).to_be_visible(timeout=60_000)
            page.screenshot(path=str(output_dir / "run-queued.png"), full_page=True)
            _wait_idle(page, RUN_TIMEOUT_S)

            # rates now exist: a grid with one more item a task is estimated from them, then measured. Two
            # tries: on a small machine shared with other work, one burst of load can double a 15 s run.
            tries = []
            for n_items in ("6", "7"):
                limit = page.get_by_role("spinbutton", name="Items per task (0 = all)")
                limit.fill(n_items)
                limit.press("Enter")
                expect(page.get_by_role("button", name="Start the run")).to_be_enabled(timeout=60_000)
                page.wait_for_timeout(1500)
                before = page.url
                page.get_by_role("button", name="Start the run").click()
                page.wait_for_url(lambda u, before=before: "job=" in u and u != before, timeout=60_000)
                expect(page.get_by_text("Runs in progress")).to_be_visible(timeout=60_000)
                _wait_idle(page, RUN_TIMEOUT_S)
                took = page.get_by_text(re.compile(r"Took .* \(estimated beforehand: .*\)"))
                expect(took).to_be_visible(timeout=60_000)
                m = re.search(r"Took (.*?) \(estimated beforehand: (.*?)\)", took.inner_text())
                wall, est = _seconds(m.group(1)), _seconds(m.group(2))
                tries.append((est, wall))
                if wall > 0 and abs(est - wall) <= 0.30 * wall:
                    break
            page.screenshot(path=str(output_dir / "run-took.png"), full_page=True)
            lines = [f"estimated {e:.0f} s, took {w:.0f} s\n" for e, w in tries]
            (output_dir / "estimate.txt").write_text("".join(lines))
            est, wall = tries[-1]
            assert wall > 0 and abs(est - wall) <= 0.30 * wall, (tries, log.read_text()[-1500:])

            # a malformed CSV upload: one clear error with the line of the unclosed quote
            page.get_by_text("Add your own suite", exact=False).click()
            page.get_by_role("tab", name="Table (CSV / JSONL)").click()
            uploader = page.locator('[data-testid="stFileUploader"]').filter(has_text="CSV or JSONL")
            uploader.locator('input[type="file"]').set_input_files(files=[{
                "name": "bad.csv", "mimeType": "text/csv",
                "buffer": b'text,label\nthe market rallied,positive\n"shares fell,negative\nprofits rose,positive\n'}])
            expect(page.get_by_text("bad.csv, line 3", exact=False)).to_be_visible(timeout=60_000)
            expect(page.get_by_text("closing quote", exact=False)).to_be_visible()
            page.screenshot(path=str(output_dir / "upload-bad-csv.png"), full_page=True)
        finally:
            browser.close()


def test_below_chance_cells_are_marked_and_badges_name_their_cell(server, fakes, tmp_path, output_dir):
    """A stored run (fake backend: 5 items a task, far too few to clear chance) on the Frontier page: every
    below-chance point is marked and gets no grade, and the badge picker's badge names model, variant, suite
    and accuracy."""
    from playwright.sync_api import expect, sync_playwright

    from evaluator.config import RunConfig
    from evaluator.runner import run

    url, _home, log = server
    result = run(RunConfig(suites=("health",), models=("fake-lm", "fake-enc"), variants=("fake", "fake-lite"),
                           limit=5, repeats=1, meter="estimate", idle_s=0, store=str(tmp_path / "store.sqlite"),
                           models_file=str(fakes)))
    points = result.frontiers["health"]
    below = [p for p in points if p.above_chance is False]
    assert below and all(p.grade == "" for p in below)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(f"{url}/frontier?run={result.run_id}&suite=health", wait_until="domcontentloaded")
            expect(page.get_by_text("Energy grades").first).to_be_visible(timeout=90_000)
            expect(page.get_by_text("not above chance").first).to_be_visible(timeout=30_000)
            page.get_by_text("Energy label badges (SVG / PNG)").first.click()
            caption = page.get_by_text(" on health: energy grade").first
            expect(caption).to_be_visible(timeout=30_000)
            assert "accuracy" in caption.inner_text()
            page.screenshot(path=str(output_dir / "below-chance.png"), full_page=True)
        finally:
            browser.close()
        assert "Traceback" not in log.read_text()
