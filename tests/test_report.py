"""Reports: self-contained HTML with escaped names, Markdown summary, PNG charts, badges, the chart itself.

Most tests use a RunResult crafted from hand-built CellResults (no models); the end-to-end ones use the
shared real ``small_run``. Tests that start Chromium are marked ``browser`` and skip without it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from evaluator.errors import FrugalError
from evaluator.pareto import mark_cells as _mark_cells
from evaluator.pareto import mark_frontier, suite_points
from evaluator.records import CellResult, RunResult, SuitePoint
from evaluator.report.badge import (
    PNG_SCALE,
    badge_filename,
    grade_colour,
    point_badge_png,
    point_badge_svg,
    safe_name,
    write_badges,
)
from evaluator.report.plots import energy_axis_title, frontier_figure, model_colours
from evaluator.report.writers import (
    _figure_script,
    md_escape,
    render_report_html,
    render_summary_md,
    write_frontier_pngs,
    write_report_html,
    write_reports,
)
from evaluator.stats import wilson_interval

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"{CHROMIUM} absent: apt-get install -y chromium")
HOSTILE_MODEL = "<script>alert(1)</script>"
HOSTILE_VARIANT = "</script><img src=x onerror=alert(1)>"
METER = {"meter": "auto", "energy_method": "estimate", "is_estimate": True, "idle_power_w": 0.0,
         "idle_note": "0: the estimate counts only this process's CPU time",
         "not_used": ["rapl: /sys/class/powercap absent"],
         "parts": {"estimate": {"watts_per_core": 4.5, "watts_per_core_source": "generic EPYC"}},
         "carbon": {"g_per_kwh": 480.0, "source": "WORLD 2023, Ember", "pue": 1.0}}
ENV = {"cpu_model": "Test CPU", "cpu_count": 2, "gpu": None, "device": "cpu", "threads": 2, "python": "3.11",
       "torch": "2.x", "transformers": "5.x", "frugal": "0.1.0", "date": "2026-01-01T00:00:00+00:00"}


def cell(suite: str, task: str, model: str, variant: str, acc: float, j_per_1k: float, n: int = 100,
         status: str = "ok", error: str | None = None, method: str = "estimate", **kw) -> CellResult:
    """A hand-built cell with consistent derived figures."""
    if status != "ok":
        return CellResult(suite=suite, task=task, model=model, variant=variant, status=status, error=error, **kw)
    k = round(acc * n)
    lo, hi = wilson_interval(k, n)
    e = j_per_1k * n / 1000
    return CellResult(suite=suite, task=task, model=model, variant=variant, status="ok", n_items=n, n_correct=k,
                      accuracy=k / n, accuracy_ci_low=lo, accuracy_ci_high=hi, energy_j=e, active_energy_j=e,
                      energy_ci_low=e * 0.97, energy_ci_high=e * 1.03, energy_j_per_item=e / n,
                      energy_j_per_1k=j_per_1k, energy_j_per_correct=e / k if k else None, energy_method=method,
                      is_estimate=method in ("estimate", "codecarbon"), repeats=3, metrics={"accuracy": k / n},
                      energy_components_j={"cpu": e}, prompt_template="Q: {text}\nA:", **kw)


def make_run(cells: list[CellResult], run_id: str = "crafted") -> RunResult:
    """A RunResult with frontiers computed the way the runner does."""
    fronts = suite_points(cells)
    return RunResult(run_id, "/nonexistent/store.sqlite", _mark_cells(tuple(cells), fronts), fronts, ENV, METER,
                     "finished")


@pytest.fixture
def crafted() -> RunResult:
    """Two suites, three (model, variant) points each, one failed cell."""
    cells = []
    for suite in ("finance", "health"):
        for task in ("t1", "t2"):
            cells += [cell(suite, task, "big", "fp32", 0.82, 900.0), cell(suite, task, "big", "bf16", 0.81, 500.0),
                      cell(suite, task, "small", "fp32", 0.60, 40.0)]
    cells.append(cell("health", "t1", "tiny", "fp32", 0, 0, status="failed", error="load failed: out of memory"))
    cells.append(cell("health", "t2", "tiny", "fp32", 0.3, 10.0))
    return make_run(cells)


@pytest.fixture
def hostile() -> RunResult:
    """Names and errors that try to break out of HTML, the chart JSON and Markdown tables."""
    cells = [cell("s<b>uite</b>", "t&'\"", HOSTILE_MODEL, HOSTILE_VARIANT, 0.7, 100.0),
             cell("s<b>uite</b>", "t&'\"", "ok|model", "fp32", 0.9, 300.0),
             cell("s<b>uite</b>", "t&'\"", "broken", "fp32", 0, 0, status="failed",
                  error="<img src=x onerror=alert(2)> | boom\nsecond line")]
    return make_run(cells, run_id="<script>alert(3)</script>")


# ------------------------------------------------------------------------------------------- HTML
def test_report_is_self_contained(crafted, tmp_path):
    from plotly.offline import get_plotlyjs

    path = write_report_html(crafted, tmp_path / "r.html")
    doc = path.read_text()
    assert doc.count('<script type="text/javascript">') == 1  # plotly.js inlined exactly once
    js = get_plotlyjs()
    assert doc.count(js) == 1
    # The plotly.js bundle holds URL strings for map tiles and attributions (unused by scatter charts; the
    # Playwright test below checks that nothing is requested); everything around it must hold none.
    page = doc.replace(js, "")
    for bad in ("src=\"http", "src='http", "href=\"http", "href='http", "<link", "@import", "url(http", "//cdn."):
        assert bad not in page, bad
    assert doc.count("Plotly.newPlot(") == 2  # one chart per suite
    assert 3_000_000 < len(doc) < 8_000_000


def test_report_content(crafted, tmp_path):
    doc = render_report_html(crafted, 2.0)
    assert "Energy is an ESTIMATE on this machine" in doc
    assert "WORLD 2023, Ember" in doc and "480.0 gCO2e/kWh" in doc and "Test CPU" in doc
    assert "load failed: out of memory" in doc
    assert "Not plotted" in doc and "tiny" in doc  # the incomplete suite point is called out
    assert "health / t1" in doc and "finance / t2" in doc  # per-task breakdown
    assert "Which rules held" in doc and "NOT held: estimate" in doc
    assert "Energy (J / 1,000 items)" in doc and "Carbon (gCO2e)" in doc  # units in headers
    assert "Recommendation" in doc and "big bf16" in doc
    assert doc.count("<svg") >= 6  # one inline energy label per suite point


def test_hostile_names_are_escaped(hostile, tmp_path):
    doc = write_report_html(hostile, tmp_path / "r.html").read_text()
    assert "<script>alert" not in doc
    assert "<img src=x" not in doc
    assert "<b>uite" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc  # shown, as text
    # every </script> closes one of our own script elements: none was opened or closed by a name
    assert doc.count("</script>") == doc.count("<script")
    for script in re.findall(r"<script[^>]*>(.*?)</script>", doc, flags=re.S)[1:]:
        assert "</" not in script and "<script" not in script.lower()


def test_chart_json_cannot_close_its_script():
    p = SuitePoint("s", "</script><img src=x onerror=alert(1)>", "v", 0.5, 0.4, 0.6, 10.0, "estimate", True, 10, 1,
                   on_frontier=True)
    html = _figure_script(frontier_figure([p], "</script>"), "plot-0")
    body = html.split("<script>", 1)[1].rsplit("</script>", 1)[0]
    assert "<" not in body


def test_summary_md_escapes_and_states_method(hostile, crafted):
    md = render_summary_md(hostile)
    assert "<script>" not in md and "<img" not in md
    assert "ok\\|model" in md
    row = next(line for line in md.splitlines() if line.startswith("| ok\\|model"))
    assert len(re.findall(r"(?<!\\)\|", row)) == 8  # 7 columns: the name's pipe does not add one
    failed = next(line for line in md.splitlines() if "boom" in line)
    assert "second line" in failed  # a newline in an error does not break the table
    md2 = render_summary_md(crafted)
    assert "ESTIMATE" in md2 and "| big | bf16 |" in md2 and "### health" in md2 and "Failed cells (1)" in md2
    assert md_escape("a|b_c*") == "a\\|b\\_c\\*"


# --------------------------------------------------------------------------------------- figures
def _points(n: int, methods: tuple[str, ...] = ("estimate",)) -> list[SuitePoint]:
    import random

    rng = random.Random(0)
    pts = []
    for i in range(n):
        a = rng.random()
        m = methods[i % len(methods)]
        pts.append(SuitePoint("s", f"model-{i % 23}", f"v{i % 7}", a, max(0, a - 0.05), min(1, a + 0.05),
                              10 ** rng.uniform(0, 5), m, m == "estimate", 40, 2))
    return mark_frontier(pts)


def test_frontier_figure_one_and_500_points():
    one = frontier_figure(_points(1), "one", tolerance_pts=2.0)
    assert one.layout.xaxis.type == "log"
    assert any(t.name == "Pareto frontier" for t in one.data)
    many = frontier_figure(_points(500), "many", tolerance_pts=2.0)
    n_markers = sum(len(t.x) for t in many.data if t.mode == "markers" and t.x and t.x[0] is not None)
    assert n_markers == 500
    assert len(many.data) < 60  # one trace per model, not per point
    assert any("indistinguishable" in (t.name or "") for t in many.data)
    hover = next(t for t in many.data if t.mode == "markers" and t.text).text[0]
    for part in ("accuracy", "95% CI", "J per 1,000 items", "grade", "n = 40 items"):
        assert part in hover
    empty = frontier_figure([], "none")
    assert "no complete" in empty.layout.annotations[0].text


def test_axis_title_says_measured_estimated_or_mixed():
    assert "estimate: CPU time x W/core" in energy_axis_title(_points(3))
    assert "measured: rapl" in energy_axis_title(_points(3, ("rapl",)))
    assert "MIXED" in energy_axis_title(_points(4, ("rapl", "estimate")))


def test_model_colours_are_deterministic():
    a = model_colours(["minilm-l6", "smollm2-135m", "qwen2.5-0.5b"])
    b = model_colours(["qwen2.5-0.5b", "smollm2-135m", "minilm-l6"])
    assert a == b and len(set(a.values())) == 3


# ---------------------------------------------------------------------------------------- badges
def test_badges_are_valid_svg_with_safe_names(hostile, crafted, tmp_path):
    paths = write_badges(hostile, tmp_path) + write_badges(crafted, tmp_path / "c")
    svgs = [p for p in paths if p.suffix == ".svg"]
    assert svgs and all(p.parent.name == "badges" for p in paths)
    assert sorted(p.with_suffix(".png") for p in svgs) == sorted(p for p in paths if p.suffix == ".png")
    for p in svgs:
        assert re.fullmatch(r"[A-Za-z0-9._+-]+\.svg", p.name)
        ET.fromstring(p.read_text())  # well-formed
        assert "<script" not in p.read_text()
    pt = hostile.frontiers[next(iter(hostile.frontiers))][0]
    assert badge_filename(pt).count("/") == 0 and safe_name("../../etc") == "etc"
    svg = point_badge_svg(crafted.frontiers["finance"][0])
    assert "energy" in svg and " est." in svg


def test_png_badges_carry_the_grade_colour(crafted):
    from PIL import Image

    for pt in crafted.frontiers["finance"]:
        img = Image.open(io.BytesIO(point_badge_png(pt))).convert("RGBA")
        assert img.height == 20 * PNG_SCALE and img.width > img.height * 2
        assert img.getpixel((0, 0))[3] == 0  # rounded, transparent corner
        # the value half is filled with the grade's colour, the label half with the label grey
        w = img.width
        right = Counter(img.getpixel((x, 3)) for x in range(w * 3 // 4, w - 6))
        left = Counter(img.getpixel((x, 3)) for x in range(6, w // 5))
        assert right.most_common(1)[0][0][:3] == _rgb(grade_colour(pt.grade))
        assert left.most_common(1)[0][0][:3] == _rgb("#555555")


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    h = hex_colour.lstrip("#")
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


# ----------------------------------------------------------------------------------- PNG, browser
@pytest.mark.browser
@needs_chromium
def test_png_written(crafted, tmp_path):
    paths = write_frontier_pngs(crafted, tmp_path)
    assert [p.name for p in paths] == ["frontier-finance.png", "frontier-health.png"]
    for p in paths:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        assert int.from_bytes(data[16:20], "big") == 1000  # width from the IHDR chunk


def test_png_without_browser_is_a_clear_error(crafted, tmp_path, monkeypatch):
    import plotly.io as pio

    def no_browser(*_a, **_k):
        raise RuntimeError("Kaleido v1 and later requires Chrome to be installed")

    monkeypatch.setattr(pio, "write_images", no_browser)
    with pytest.raises(FrugalError, match="apt-get install -y chromium"):
        write_frontier_pngs(crafted, tmp_path)
    paths = write_reports(crafted, tmp_path / "out")  # the other outputs are still written
    assert {p.name for p in paths} >= {"report.html", "summary.md"}
    assert not list((tmp_path / "out").glob("*.png"))


def _chromium_dom(path: Path, tmp_path: Path) -> str:
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", path.resolve().as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


@pytest.mark.browser
@needs_chromium
def test_report_renders_charts_in_headless_chromium(hostile, crafted, tmp_path):
    path = write_report_html(crafted, tmp_path / "r.html")
    dom = _chromium_dom(path, tmp_path)
    assert dom.count('class="main-svg"') >= 2  # plotly drew each chart
    assert "Pareto frontier" in dom and "big bf16" in dom
    bad = write_report_html(hostile, tmp_path / "h.html")
    dom = _chromium_dom(bad, tmp_path)
    assert 'class="main-svg"' in dom  # a hostile name does not break the chart
    assert "<img src=\"x\"" not in dom and "onerror=\"alert" not in dom  # nothing injected into the DOM


@pytest.mark.browser
@needs_chromium
def test_report_makes_no_network_request(crafted, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright-python not installed")
    path = write_report_html(crafted, tmp_path / "r.html")
    requests: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("#plot-1 .main-svg", timeout=20_000)
        point = page.locator("#plot-0 .scatterlayer .point").first
        point.scroll_into_view_if_needed()
        box = point.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.wait_for_selector("#plot-0 .hoverlayer .hovertext", timeout=10_000)  # the hover label is drawn
        hover = page.text_content("#plot-0 .hoverlayer .hovertext") or ""
        browser.close()
    external = [u for u in requests if not u.startswith(("file:", "data:", "blob:", "about:"))]
    assert external == []
    assert "J per 1,000 items" in hover and "95% CI" in hover


# ------------------------------------------------------------------------------------ end to end
def test_small_run_outputs(small_run):
    out = Path(small_run.store_path).parent / "out"
    names = {p.name for p in out.iterdir()}
    assert {"results.json", "results.csv", "report.html", "summary.md", "badges"} <= names
    if shutil.which("chromium") or Path(CHROMIUM).exists():
        assert {"frontier-finance.png", "frontier-health.png"} <= names
    badges = list((out / "badges").glob("*.svg"))
    assert len(badges) == sum(len(p) for p in small_run.frontiers.values())
    doc = (out / "report.html").read_text()
    assert "minilm-l6" in doc and "smollm2-135m" in doc and "Suite: health" in doc


def test_cli_report_exit_codes(small_run, tmp_path, capsys):
    from evaluator.cli import main

    src = Path(small_run.store_path).parent / "out" / "results.json"
    assert main(["report", str(src), "--out", str(tmp_path / "x.html")]) == 0
    assert (tmp_path / "x.html").stat().st_size > 3_000_000
    assert main(["report", small_run.run_id, "--store", small_run.store_path, "--out", str(tmp_path / "y.html")]) == 0
    assert main(["report", "no-such-run", "--store", str(tmp_path / "empty.sqlite"), "--out",
                 str(tmp_path / "z.html")]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ results.json schema version
def _written(crafted, tmp_path, **changes) -> Path:
    import json

    from evaluator.report import results_dict

    doc = {**results_dict(crafted), **changes}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc, default=str))
    return path


def test_results_json_of_this_schema_version_reads_back(crafted, tmp_path):
    from evaluator.records import SCHEMA_VERSION
    from evaluator.report import read_results_json

    back = read_results_json(_written(crafted, tmp_path, schema_version=SCHEMA_VERSION))
    assert [c.accuracy for c in back.cells] == [c.accuracy for c in crafted.cells]


@pytest.mark.parametrize(("version", "why"), [("newer", "is newer than this Frugal understands"),
                                             ("2", "must be an integer"), (True, "must be an integer"),
                                             (1.5, "must be an integer")])
def test_results_json_of_another_schema_version_is_refused(crafted, tmp_path, version, why):
    from evaluator.errors import ValidationError
    from evaluator.records import SCHEMA_VERSION
    from evaluator.report import read_results_json

    path = _written(crafted, tmp_path, schema_version=SCHEMA_VERSION + 1 if version == "newer" else version)
    with pytest.raises(ValidationError) as err:
        read_results_json(path)
    assert why in str(err.value) and err.value.field == "schema_version" and err.value.file == str(path)
