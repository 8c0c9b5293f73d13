"""Mutation score of the pure core: mutmut over each target module, against its fast unit tests only.

    .venv/bin/python bench/mutation.py                 # every module in TARGETS (make mutation)
    .venv/bin/python bench/mutation.py evaluator/stats.py --max-children 1

Each module runs in its own scratch copy of the repository (evaluator/, tests/, pyproject.toml and a
setup.cfg holding the [mutmut] section), so the checkout is never touched and nothing is cached between
runs. mutmut changes one thing at a time in the module (an operator, a constant, a comparison, a
return value) and runs the tests that cover the changed function; a mutant is killed when a test fails.
The table, the command and every survivor (with the reason it is equivalent, from EQUIVALENT, or
"NOT EXPLAINED") replace the generated section of docs/testing.md. Exit status 1 when a module scores
below TARGET_SCORE or a survivor has no reason.

To add a module (the cell key, the store, the task-type and backend interfaces): one line in TARGETS
with the tests that exercise it without a real model.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "testing.md"
BEGIN, END = "<!-- mutation:begin (bench/mutation.py writes this section) -->", "<!-- mutation:end -->"
TARGET_SCORE = 0.90

#: module -> the fast tests that must kill its mutants (no model, no network, no browser: seconds in all).
#: The one place to add a module. Arguments after the files go to pytest as they are.
TARGETS: dict[str, list[str]] = {
    "evaluator/pareto.py": ["tests/test_pareto_stats.py", "tests/test_mutation_core.py", "tests/test_verdict.py",
                            "tests/test_adaptive.py::test_the_recommendation_says_whether_the_runner_up_is_"
                            "distinguishable", "tests/test_adaptive.py::test_the_leader_is_the_recommendation_on_the_"
                            "items_seen", "tests/test_adaptive.py::test_the_recommendation_text_is_exact_in_both_"
                            "of_its_forms"],
    # with the pure tests of the paired gap, the power estimate and the race's calibration (test_adaptive.py)
    "evaluator/stats.py": ["tests/test_pareto_stats.py", "tests/test_mutation_core.py", "tests/test_verdict.py", *(
        f"tests/test_adaptive.py::{t}" for t in (
            "test_a_task_seen_whole_is_known_exactly_and_a_sample_of_it_less_so",
            "test_the_race_stops_a_point_as_often_as_its_test_allows_on_the_items_of_the_suite",
            "test_paired_gap_averages_tasks_like_the_suite_accuracy", "test_power_estimate",
            "test_the_recommendation_says_whether_the_runner_up_is_distinguishable",
            "test_too_few_items_or_a_weak_difference_stop_nothing",
            "test_a_cheaper_more_accurate_point_stops_the_dearer_one_only_beyond_the_tolerance",
            "test_the_regression_estimate_of_a_task_one_point_saw_whole",
            "test_a_point_seen_whole_is_a_control_variate_at_the_same_level_and_with_more_power",
            "test_paired_gap_edge_cases_of_the_regression_and_of_several_tasks"))],
    "evaluator/gates.py": ["tests/test_gates.py", "tests/test_mutation_core.py",
                           "--deselect", "tests/test_gates.py::test_cli_gate_exit_codes"],  # a real model run
    "evaluator/compare.py": ["tests/test_compare.py", "tests/test_mutation_core.py"],
    # the pure race (the runner tests in the same file run fake models: left to make test)
    "evaluator/adaptive.py": ["tests/test_adaptive.py", "-k", "stops or stop_nothing or correction or decided or "
                              "leader or round_bounds or paired_gap or power or seen_whole"],
    # the pool of loaded models, on its own (the runner's use of it is tested with fake models in make test)
    "evaluator/pool.py": ["tests/test_pool.py"],
}

#: Survivors that no test can kill, by mutmut's mutant name, with the reason. A name that no longer
#: exists (the module changed) is reported as stale so the list never hides a new survivor.
_CASE = "float() reads 'nan'/'inf' in any case: the same value"
_STRICT_IN = "the inner zip (strict) still raises on unequal lengths: it runs to its end for every non-dominated point"
_STRICT_OUT = "the outer zip (strict) raises on unequal lengths before the result is used"
_CHECKED = "the length check above raises before the zips can see lists of different lengths"
_ZERO = "a zero accuracy change has p = 1 in both tests (McNemar: equal discordant counts; z = 0), never < 0.05"
_P05 = ("only a p-value of exactly 0.05 differs: McNemar's min(1, 2 * tail) never equals it (checked for every "
        "n < 1200), nor does the z-test's erfc for any counts we found")
_RISE = ("only a change of exactly +-0.05 differs: e_b / e_a - 1 is a multiple of 2^-53 near 1, and 0.05 is not, "
         "so it never equals ENERGY_RISE")
_LOOKUP = "items looked up for a cell that failed: diff_cells ignores them (it compares ok cells only, both sides)"
_ZIP = "zip of the points and their gradable flags: the same length by construction"
_ROW = "zip of a row and the column widths: every row has as many cells as the header"
_LAST_NONE = "OrderedDict.popitem(last=None) is popitem(last=False): it tests the flag's truth, and None is false"
EQUIVALENT: dict[str, str] = {
    "evaluator.pool.xǁModelPoolǁ__init____mutmut_22": "the default on_free callback's return value is never used",
    "evaluator.pool.xǁModelPoolǁmake_room__mutmut_24": _LAST_NONE,
    "evaluator.pool.xǁModelPoolǁput__mutmut_16": _LAST_NONE,
    "evaluator.pool.xǁModelPoolǁrelease__mutmut_5": _LAST_NONE,
    "evaluator.gates.x__points__mutmut_13": "`<` for `<=`: when the frontiers cover exactly the cells' suites, the "
                                            "recompute loop runs over an empty set",
    "evaluator.gates.x_check_gates__mutmut_14": "`_points` has an entry for every suite in the cells: the default is "
                                                "never used",
    "evaluator.gates.x_check_gates__mutmut_16": "as above: the default of `points.get` is never used",
    "evaluator.pareto.x_energy_grades__mutmut_3": "`>= 0` for `> 0`: 0 is already dropped by the truth test `e and`",
    "evaluator.pareto.x_energy_grades__mutmut_15": "`< 0` for `<= 0`: 0 is already caught by `not e`",
    "evaluator.pareto.x_frontier_indices__mutmut_5": "sign 2 for 1 scales both sides of each comparison alike",
    "evaluator.pareto.x_frontier_indices__mutmut_7": "sign -2 for -1 scales both sides of each comparison alike",
    "evaluator.pareto.x_frontier_indices__mutmut_12": _STRICT_IN,
    "evaluator.pareto.x_frontier_indices__mutmut_15": _STRICT_IN,
    "evaluator.pareto.x_frontier_indices__mutmut_16": _STRICT_IN,
    "evaluator.pareto.x_frontier_indices__mutmut_33": _STRICT_OUT,
    "evaluator.pareto.x_frontier_indices__mutmut_36": _STRICT_OUT,
    "evaluator.pareto.x_frontier_indices__mutmut_37": _STRICT_OUT,
    "evaluator.pareto.x_mark_frontier__mutmut_17": _ZIP, "evaluator.pareto.x_mark_frontier__mutmut_20": _ZIP,
    "evaluator.pareto.x_mark_frontier__mutmut_21": _ZIP,
    "evaluator.pareto.x_mark_frontier__mutmut_32": "a dominator of equal accuracy has ci_low <= its accuracy = "
                                                   "p.accuracy <= p.ci_high: it never changes `indistinguishable`",
    "evaluator.pareto.x_recommend__mutmut_29": _CASE, "evaluator.pareto.x_recommend__mutmut_81": _CASE,
    "evaluator.pareto.x_suite_points__mutmut_116": _CASE,
    "evaluator.adaptive.x_race_round__mutmut_49": "`>=` for `>` against the critical z: they differ only when a "
                                                  "paired z equals the inverse-normal critical value exactly, which "
                                                  "no set of item outcomes produces",
    "evaluator.adaptive.x_race_round__mutmut_41": "as for mutant 49: `>=` for `>` against the critical z",
    "evaluator.adaptive.x_race_round__mutmut_103": "as for mutant 49: `>=` for `>` against the critical z",
    "evaluator.adaptive.x_order_items__mutmut_1": "mutmut reports no textual change for this mutant (the function "
                                                  "as written)",
    "evaluator.adaptive.x_round_bounds__mutmut_1": "mutmut reports no textual change for this mutant (the function "
                                                   "as written)",
    "evaluator.compare.x__improved__mutmut_6": _ZERO, "evaluator.compare.x_diff_cells__mutmut_159": _ZERO,
    "evaluator.compare.x__improved__mutmut_9": _P05, "evaluator.compare.x_diff_cells__mutmut_162": _P05,
    "evaluator.compare.x__improved__mutmut_14": _RISE, "evaluator.compare.x_diff_cells__mutmut_168": _RISE,
    "evaluator.compare.x__items__mutmut_15": "None for [] after a failed store read: both are falsy, the loop goes on",
    "evaluator.compare.x__store_for__mutmut_8": "break for continue on a store seen already: that can only happen "
                                                "on the loop's last iteration",
    "evaluator.compare.x__store_for__mutmut_9": "a store given twice is opened twice: the same items are found",
    "evaluator.compare.x_compare__mutmut_51": _LOOKUP, "evaluator.compare.x_compare__mutmut_63": _LOOKUP,
    "evaluator.compare.x_compare__mutmut_70": _LOOKUP,
    "evaluator.compare.x_diff_cells__mutmut_54": "`or` for `and`: with items on one side only no item is common, "
                                                 "so the unpaired fallback runs as before",
    "evaluator.compare.x_diff_cells__mutmut_131": "`>= 0` for `> 0`: an energy of 0 already fails the truth test",
    "evaluator.compare.xǁComparisonǁrender__mutmut_44": _ROW, "evaluator.compare.xǁComparisonǁrender__mutmut_47": _ROW,
    "evaluator.compare.xǁComparisonǁrender__mutmut_48": _ROW,
    "evaluator.stats.x_mcnemar__mutmut_11": _CHECKED, "evaluator.stats.x_mcnemar__mutmut_14": _CHECKED,
    "evaluator.stats.x_mcnemar__mutmut_15": _CHECKED, "evaluator.stats.x_mcnemar__mutmut_22": _CHECKED,
    "evaluator.stats.x_mcnemar__mutmut_25": _CHECKED, "evaluator.stats.x_mcnemar__mutmut_26": _CHECKED,
    "evaluator.stats.x_t_critical_95__mutmut_5": _CASE,
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 33: "no tests", 5: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", -9: "segfault", -11: "segfault"}
#: a mutant that hangs the tests (an endless loop) is caught, so a timeout counts as killed
CAUGHT = {"killed", "timeout"}


def _scratch(module: str, tests: list[str]) -> Path:
    """A copy of what the tests need, with the [mutmut] section in setup.cfg (pyproject.toml unchanged)."""
    work = Path(tempfile.mkdtemp(prefix="frugal-mutation-"))
    shutil.copytree(ROOT / "evaluator", work / "evaluator", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "tests", work / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", work / "pyproject.toml")
    if (ROOT / "models.yaml").exists():
        shutil.copy(ROOT / "models.yaml", work / "models.yaml")
    # -p no:randomly / no:timeout: mutmut times each mutant itself; file order keeps the stats stable.
    # --doctest-modules off: the trampolined copy of the module is not the module's doctest.
    args = ["-p", "no:randomly", "-p", "no:timeout", "-o", "addopts=--strict-markers -p no:cacheprovider", "-q"]
    (work / "setup.cfg").write_text(
        "[mutmut]\nsource_paths=evaluator\nonly_mutate=" + module + "\n"
        "pytest_add_cli_args=\n" + "".join(f"    {a}\n" for a in args)
        + "pytest_add_cli_args_test_selection=\n" + "".join(f"    {t}\n" for t in tests))
    return work


def _functions(mutated: Path) -> dict[str, str]:
    """Source of every function in mutmut's copy of a module (original and mutants), by name."""
    text = mutated.read_text()
    return {n.name: ast.get_source_segment(text, n) or "" for n in ast.walk(ast.parse(text))
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _diff(functions: dict[str, str], name: str) -> str:
    """The lines a mutant changed, as '- old / + new'."""
    fn = name.rsplit(".", 1)[-1]
    orig = functions.get(fn.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "").splitlines()
    mutant = functions.get(fn, "").splitlines()[1:]
    hunks: list[list[str]] = []
    for ln in difflib.unified_diff(orig[1:], mutant, lineterm="", n=0):
        if ln.startswith("@@"):  # "@@ -12 +12 @@": where in the function, to tell identical lines apart
            hunks.append([f"line {int(ln.split()[1].lstrip('-').split(',')[0]) + 1}:"])
        elif ln[:1] in "+-" and not ln.startswith(("+++", "---")) and hunks:
            hunks[-1].append(ln[0] + " " + ln[1:].strip())
    return "; ".join(h[0] + " " + " / ".join(h[1:]) for h in hunks) or "(no textual change found)"


def run_module(module: str, tests: list[str], max_children: int) -> dict:
    """mutmut run over one module; its counts and its survivors (name, diff)."""
    work = _scratch(module, tests)
    t0 = time.monotonic()
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)], cwd=work,
                          capture_output=True, text=True, env=env)
    meta = work / "mutants" / (module + ".meta")
    codes = json.loads(meta.read_text())["exit_code_by_key"] if meta.exists() else {}
    if proc.returncode != 0 or not codes or None in codes.values():
        log = (proc.stdout + proc.stderr).replace("\r", "\n")
        log = "\n".join(ln for ln in log.splitlines() if "Generating mutants" not in ln and "Running " not in ln)
        raise SystemExit(f"mutmut did not check every mutant of {module} (exit {proc.returncode}; a failing clean "
                         f"test run stops it); its output ends:\n{log[-4000:]}\nscratch copy kept in {work}")
    status = {name: STATUS.get(code, "suspicious") for name, code in codes.items()}
    counts = Counter(status.values())
    functions = _functions(work / "mutants" / module)
    survivors = [(n, _diff(functions, n)) for n, s in sorted(status.items()) if s not in CAUGHT]
    shutil.rmtree(work, ignore_errors=True)
    killed = sum(counts[s] for s in CAUGHT)
    return {"module": module, "tests": tests, "mutants": len(status), "killed": killed,
            "survived": len(status) - killed, "score": killed / len(status) if status else 1.0,
            "by_status": dict(counts), "survivors": [{"name": n, "status": status[n], "diff": d,
                                                      "reason": EQUIVALENT.get(n)} for n, d in survivors],
            "seconds": round(time.monotonic() - t0, 1)}


def _md(results: list[dict], command: str, kept: tuple[list[str], list[str], str] = ([], [], "")) -> list[str]:
    """The generated section. ``kept``: table rows, survivor lines and the date of modules this run left out
    (from the previous section, :func:`kept_from`), so that a run of one module updates its own row only."""
    rows, lines, when = kept
    md = [BEGIN, "", f"Produced by `{command}` on {time.strftime('%Y-%m-%d')} "
          f"(mutmut {_mutmut_version()}, Python {sys.version.split()[0]})"
          + (f"; the rows of the other modules are from the previous run ({when})" if rows else "")
          + f". Target: at least {TARGET_SCORE:.0%} of mutants killed in every module.", "",
          "| module | tests | mutants | killed | survived | score | time |", "|---|---|---:|---:|---:|---:|---:|",
          *rows]
    for r in results:
        args = r["tests"]
        files = [t for i, t in enumerate(args) if t.startswith("tests/") and not (i and args[i - 1].startswith("-"))]
        dropped = [t.split("::")[-1] for i, t in enumerate(args) if i and args[i - 1] == "--deselect"]
        tests = ", ".join(t.removeprefix("tests/") for t in files) + "".join(f" (without {d})" for d in dropped)
        md.append(f"| `{r['module']}` | {tests} | {r['mutants']} | {r['killed']} | {r['survived']} | "
                  f"{r['score']:.1%} | {r['seconds']:.0f} s |")
    md += ["", "Killed includes timeouts (a mutant that makes a test hang is caught by mutmut's time limit).", ""]
    surv = [(r["module"], s) for r in results for s in r["survivors"]]
    if surv or lines:
        md += ["Survivors, each with the reason it is equivalent (no test can tell it from the original):", "",
               *lines]
        for _module, s in surv:
            md.append(f"- `{s['name']}` ({s['status']}): `{s['diff'].replace('`', chr(39))}`: "
                      f"{s['reason'] or 'NOT EXPLAINED: kill it with a test or add the reason to EQUIVALENT'}")
    else:
        md.append("No survivors.")
    known = {s["name"] for _, s in surv}
    stale = sorted(n for n in EQUIVALENT if n not in known
                   and any(n.startswith(_prefix(r["module"])) for r in results))
    if stale:
        md += ["", "Stale EQUIVALENT entries (the module changed; re-check them): " + ", ".join(stale)]
    return md + ["", END]


def _prefix(module: str) -> str:
    return module.removesuffix(".py").replace("/", ".") + "."


def _mutmut_version() -> str:
    from importlib.metadata import version

    return version("mutmut")


def kept_from(text: str, modules: list[str]) -> tuple[list[str], list[str], str]:
    """The previous section's table rows and survivor lines of every module not in ``modules``, and its date.

    >>> doc = (BEGIN + "\\nProduced by `x` on 2026-12-01 (mutmut 3).\\n| `evaluator/a.py` | t | 1 |\\n"
    ...        "| `evaluator/b.py` | t | 2 |\\n- `evaluator.a.x_f__mutmut_1` (survived): why\\n"
    ...        "- `evaluator.b.x_g__mutmut_2` (survived): why\\n" + END)
    >>> kept_from(doc, ["evaluator/b.py"])
    (['| `evaluator/a.py` | t | 1 |'], ['- `evaluator.a.x_f__mutmut_1` (survived): why'], '2026-12-01')
    """
    m = re.search(re.escape(BEGIN) + "(.*?)" + re.escape(END), text, re.S)
    if not m:
        return [], [], ""
    rows, lines = [], []
    for ln in m.group(1).splitlines():
        row = re.match(r"\| `([^`]+)` \|", ln)
        if row and row.group(1) not in modules:
            rows.append(ln)
        item = re.match(r"- `([^`]+)` \(", ln)
        if item and not any(item.group(1).startswith(_prefix(mod)) for mod in modules):
            lines.append(ln)
    when = re.search(r"Produced by `[^`]*` on (\d{4}-\d{2}-\d{2})", m.group(1))
    return rows, lines, when.group(1) if when else "an earlier date"


def write_doc(md: list[str]) -> None:
    """Replace the generated section of docs/testing.md (or append it)."""
    text = DOC.read_text() if DOC.exists() else "# Testing\n"
    block = "\n".join(md)
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    DOC.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help=f"a subset of {', '.join(TARGETS)}")
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutants (default 2)")
    ap.add_argument("--no-doc", action="store_true", help="print the table, leave docs/testing.md alone")
    args = ap.parse_args(argv)
    unknown = [m for m in args.modules if m not in TARGETS]
    if unknown:
        ap.error(f"not in TARGETS: {', '.join(unknown)} (known: {', '.join(TARGETS)})")
    results = []
    for module in args.modules or list(TARGETS):
        print(f"mutating {module} against {' '.join(TARGETS[module])} ...", flush=True)
        r = run_module(module, TARGETS[module], args.max_children)
        print(f"  {r['mutants']} mutants, {r['killed']} killed, {r['survived']} survived ({r['score']:.1%}) "
              f"in {r['seconds']:.0f} s", flush=True)
        results.append(r)
    command = "python bench/mutation.py" + (" " + " ".join(args.modules) if args.modules else "")
    previous = DOC.read_text() if DOC.exists() and args.modules else ""
    md = _md(results, command, kept_from(previous, [r["module"] for r in results]))
    print("\n".join(md))
    (ROOT / "out").mkdir(exist_ok=True)
    (ROOT / "out" / "mutation.json").write_text(json.dumps(results, indent=1))
    if not args.no_doc:
        write_doc(md)
    bad = [r["module"] for r in results if r["score"] < TARGET_SCORE]
    unexplained = [s["name"] for r in results for s in r["survivors"] if not s["reason"]]
    if bad or unexplained:
        print(f"below {TARGET_SCORE:.0%}: {bad or 'none'}; survivors without a reason: {len(unexplained)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
