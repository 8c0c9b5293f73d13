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
            expect(page.get_by_text("Job ", exact=False).first).to_be_visible(timeout=60_000)
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
