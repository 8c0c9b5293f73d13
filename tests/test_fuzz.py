"""Bad input, generated: every malformed input ends in a clear error naming the file, the line and the field.

Property-based (hypothesis). Families: suite.yaml, JSONL and CSV item files, table uploads (read_table +
suite_from_table), models.yaml, run configs (eval.yaml and flags), zipped suites, results.json (read back by
`frugal report` and `frugal compare`, hand-edited or damaged), the SQLite results store (cut short,
overwritten, appended to: read or refused naming it), plus YAML-level damage shared by all three
YAML files (object-constructing tags, deep nesting, alias bombs, bad encodings, NUL
bytes, empty files, garbage). For each case the library raises ValidationError (UploadError, a subclass, for
uploads) whose attributes and message name the file, the line (where a line makes sense) and the field;
through the CLI (in-process `main(argv)`, and a few real subprocesses) the exit code is 2, stderr holds no
traceback, and the --store file is neither created nor, when it exists, given rows. No model is ever loaded:
`runner.plan` is wrapped so that a case that validated would fail the test before anything runs.

Counts of generated cases per test are printed in the terminal summary (tests/_fuzz_counts.py). The
default run generates several hundred cases; `-m slow` runs the same properties with ten times as many.
FRUGAL_FUZZ_SCALE multiplies both (e.g. 0.2 for a quick look, 5 for a long soak).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
import shutil
import sqlite3
import stat
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from evaluator.config import RunConfig, load_config
from evaluator.errors import ValidationError
from evaluator.models import load_registry
from evaluator.suite import MAX_LINE_CHARS, TASK_TYPES, load_suite
from evaluator.uploads import UploadError, extract_suite_zip, read_table, suite_from_table

ROOT = Path(__file__).resolve().parent.parent
MODELS_YAML = ROOT / "models.yaml"
SCALE = float(os.environ.get("FRUGAL_FUZZ_SCALE", "1"))
SLOW_FACTOR = 10
ANY = object()  # "must be present, any value"


# ------------------------------------------------------------------------------------------ harness
@dataclass(frozen=True)
class Budget:
    """How many cases a property generates in this run."""

    examples: int
    slow: bool


def budget(default: int) -> pytest.MarkDecorator:
    """A default run (derandomized, reproducible) and a slow run with SLOW_FACTOR times the cases."""
    n = max(1, round(default * SCALE))
    return pytest.mark.parametrize("bud", [
        pytest.param(Budget(n, False), id="default"),
        pytest.param(Budget(n * SLOW_FACTOR, True), id="slow", marks=pytest.mark.slow),
    ])


def fuzz(bud: Budget, **strategies: Any) -> Callable[[Callable[..., None]], Callable[[], None]]:
    """settings + given for a property defined inside a test (so it can use the test's fixtures)."""
    def deco(fn: Callable[..., None]) -> Callable[[], None]:
        return settings(max_examples=bud.examples, deadline=None, database=None, derandomize=not bud.slow,
                        suppress_health_check=list(HealthCheck), print_blob=True)(given(**strategies)(fn))
    return deco


@contextmanager
def sandbox(root: Path) -> Iterator[Path]:
    """A fresh folder per generated case."""
    d = Path(tempfile.mkdtemp(dir=root))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def located(exc: BaseException, *, file: str | None = None, line: Any = ANY, field: Any = ANY,
            error_type: type = ValidationError) -> ValidationError:
    """Assert ``exc`` is the project's error and names its file, line and field (attributes and message)."""
    assert isinstance(exc, error_type), f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert "Traceback" not in msg
    assert exc.file, f"no file named: {msg}"
    assert str(exc.file) in msg
    if file is not None:
        assert Path(exc.file).name == file or exc.file == file, (exc.file, file, msg)
    if line is ANY:
        assert exc.line is not None, f"no line named: {msg}"
    elif line is not None:
        assert exc.line == line, (exc.line, line, msg)
    if exc.line is not None:
        assert f"line {exc.line}" in msg
    if field is ANY:
        assert exc.field, f"no field named: {msg}"
    elif isinstance(field, str):
        assert exc.field == field, (exc.field, field, msg)
    elif callable(field):
        assert exc.field and field(exc.field), (exc.field, msg)
    if exc.field:
        assert f"field '{exc.field}'" in msg
    return exc


def raises(fn: Callable[[], Any]) -> BaseException:
    """The exception ``fn`` raises (anything else than the project's error fails in ``located``)."""
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - the point is to see what escapes
        return exc
    raise AssertionError("malformed input was accepted")


def key_on_line(text: str, line: int, key: str) -> bool:
    """The reported line holds ``key:`` (quoted or not)."""
    lines = text.split("\n")
    assert 1 <= line <= len(lines), (line, len(lines))
    return any(k in lines[line - 1] for k in (f"{key}:", f"'{key}':", f'"{key}":'))  # YAML quotes 'on', 'no', ...


def dump_yaml(doc: Any) -> str:
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1_000_000)


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run `frugal` in-process: (exit code, stdout, stderr); argparse errors count as their exit code."""
    from evaluator.cli import main

    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_cli_refused(code: int, err: str, store: Path, *names: str) -> None:
    """Exit 2, a one-line-ish error naming what is given, no traceback, no store written."""
    assert code == 2, (code, err)
    assert "Traceback" not in err, err
    for n in names:
        assert n in err, (n, err)
    if store.exists():
        assert store_rows(store) == 0
    else:
        assert not store.exists()


def store_rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return sum(db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("runs", "cells", "items"))


@pytest.fixture(autouse=True)
def _no_model_ever(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fresh FRUGAL_HOME; and a case that passes validation fails here instead of loading a model."""
    import evaluator.runner

    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("FRUGAL_STORE", raising=False)
    real_plan = evaluator.runner.plan

    def guarded(config: RunConfig) -> Any:
        real_plan(config)
        raise AssertionError("a malformed input passed validation; the run would have loaded a model")

    monkeypatch.setattr(evaluator.runner, "plan", guarded)


# ------------------------------------------------------------------------------------ strategies
SAFE_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
TEXT = st.text(SAFE_CHARS, max_size=20)
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SMALL_INTS = st.integers(-10**6, 10**6)
NOT_TEXT = st.one_of(st.booleans(), st.lists(SMALL_INTS, max_size=3),
                     st.dictionaries(st.sampled_from(["a", "b", "c"]), SMALL_INTS, max_size=2))
ANY_VALUE = st.one_of(st.none(), SMALL_INTS, st.floats(allow_nan=False, allow_infinity=False), TEXT, NOT_TEXT)
BAD_NAME = st.one_of(st.none(), SMALL_INTS, NOT_TEXT, TEXT.filter(lambda s: not NAME_RE.fullmatch(s)),
                     st.sampled_from(["", "Mini Suite!", "UPPER", "a" * 65, "mini\n", "-lead", "ünï", "a/b", "..",
                                      "a\x00b"]))
BAD_TEMPLATE = st.builds(lambda pre, bad, post: pre + bad + post,
                         st.text(st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=8),
                         st.sampled_from(["{", "{}", "{0}", "{a b}", "{text.__class__}", "{text[0]}", "{text!r}",
                                          "{text:>10}", "{ text}", "{te{xt}", "x {text", "{{{"]),
                         st.text(st.characters(blacklist_characters="{}", blacklist_categories=("Cs",)), max_size=8)
                         .map(lambda s: s.replace("}", "")))
def LABELS_FIELD(f: str) -> bool:  # noqa: N802 - used like a constant
    return f == "labels" or f.startswith("labels[")


UNKNOWN_KEY = st.from_regex(r"[a-z][a-z_]{0,11}", fullmatch=True)
OBJECT_TAGS = ["!!python/object/apply:os.system ['touch {sentinel}']",
               "!!python/object/apply:os.system\n  - touch {sentinel}",
               "!!python/object/new:os.system ['touch {sentinel}']", "!!python/name:os.system",
               "!!python/module:os", "!!python/tuple [1, 2]", "!!python/object:evaluator.config.RunConfig {}",
               "!custom thing", "!<tag:example.com,2000:app/x> y"]
WRONG_TYPE_TAGS = ["!!binary aGVsbG8=", "!!set {{a, b}}", "!!omap [{{a: 1}}]", "!!pairs [{{a: 1}}]",
                   "!!timestamp 2001-12-14t21:59:43.10-05:00"]

# ----------------------------------------------------------------------------------- base suite
CLS_ROWS = [{"id": f"c{i}", "text": f"headline {i}", "label": ("pos", "neg")[i % 2]} for i in range(6)]
CLS_ROWS[5]["split"] = "train"
MC_HEADER = ["id", "question", "choices", "answer"]
MC_ROWS = [[f"m{i}", f"{i} plus one?", json.dumps([str(i + 1), str(i + 2)]), "0"] for i in range(5)]
BASE_SUITE: dict[str, Any] = {
    "name": "fz", "description": "fuzz target", "version": 1, "tasks": [
        {"name": "cls", "type": "classification", "description": "c", "data": {"path": "cls.jsonl"},
         "prompt": "Text: {text}\nAnswer:", "encoder_input": "{text}",
         "labels": [{"name": "pos", "description": "good"}, {"name": "neg", "description": "bad"}],
         "metrics": ["accuracy"]},
        {"name": "mc", "type": "multiple_choice", "data": {"path": "mc.csv"}, "prompt": "Q: {question}\nA:"}]}


def jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode()


def write_suite(d: Path, doc: Any = None, cls: bytes | None = None, mc: bytes | None = None,
                suite_bytes: bytes | None = None) -> str:
    """Write a suite folder; returns the suite.yaml text."""
    text = dump_yaml(BASE_SUITE if doc is None else doc)
    (d / "suite.yaml").write_bytes(suite_bytes if suite_bytes is not None else text.encode())
    (d / "cls.jsonl").write_bytes(jsonl_bytes(CLS_ROWS) if cls is None else cls)
    (d / "mc.csv").write_bytes(csv_bytes(MC_HEADER, MC_ROWS) if mc is None else mc)
    return text


def test_base_inputs_are_valid(tmp_path):
    """The fuzz targets start from inputs that load, so each generated error comes from its mutation."""
    write_suite(tmp_path)
    suite = load_suite(str(tmp_path))
    assert [len(t.items) for t in suite.tasks] == [5, 5]
    (tmp_path / "models.yaml").write_text(dump_yaml(BASE_MODELS))
    assert list(load_registry(tmp_path / "models.yaml")) == ["tiny", "small"]
    (tmp_path / "eval.yaml").write_text(dump_yaml(BASE_CONFIG))
    assert load_config(tmp_path / "eval.yaml").limit == 2


# ------------------------------------------------------------------------------ suite.yaml schema
@st.composite
def suite_yaml_case(draw: st.DrawFn) -> tuple[dict, str, str, bool, str | None]:
    """(doc, expected field, key on the reported line, key missing?, data file the error names or None)."""
    doc = copy.deepcopy(BASE_SUITE)
    ti = draw(st.sampled_from([0, 1]))
    task = doc["tasks"][ti]
    kind = draw(st.sampled_from(["top_missing", "top_name", "top_desc", "top_tasks", "top_unknown", "task_missing",
                                 "task_name", "task_type", "task_prompt", "task_enc", "task_labels", "mc_labels",
                                 "task_metrics", "task_data", "task_unknown", "task_dup", "task_desc",
                                 "task_not_mapping", "unused_field"]))
    if kind == "top_missing":
        key = draw(st.sampled_from(["name", "tasks"]))
        del doc[key]
        return doc, key, key, True, None
    if kind == "top_name":
        doc["name"] = draw(BAD_NAME)
        return doc, "name", "name", False, None
    if kind == "top_desc":
        doc["description"] = draw(NOT_TEXT)
        return doc, "description", "description", False, None
    if kind == "top_tasks":
        doc["tasks"] = draw(st.one_of(st.just([]), st.none(), TEXT, SMALL_INTS, st.dictionaries(TEXT, TEXT)))
        return doc, "tasks", "tasks", False, None
    if kind == "top_unknown":
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in BASE_SUITE and k != "licence"))
        doc[key] = draw(ANY_VALUE)
        return doc, key, key, False, None
    if kind == "task_not_mapping":
        doc["tasks"][ti] = draw(st.one_of(TEXT, SMALL_INTS, st.lists(SMALL_INTS, max_size=2), st.none()))
        return doc, f"tasks[{ti}]", "tasks", False, None
    if kind == "task_missing":
        key = draw(st.sampled_from(["name", "type", "prompt", "data"] + (["labels"] if ti == 0 else [])))
        del task[key]
        return doc, key, key, True, None
    if kind == "task_name":
        task["name"] = draw(BAD_NAME)
        return doc, "name", "name", False, None
    if kind == "task_dup":
        doc["tasks"][1]["name"] = "cls"
        return doc, "name", "name", False, None
    if kind == "task_type":
        task["type"] = draw(st.one_of(st.none(), SMALL_INTS, NOT_TEXT, TEXT.filter(lambda s: s not in TASK_TYPES)))
        return doc, "type", "type", False, None
    if kind == "task_prompt":
        task["prompt"] = draw(st.one_of(SMALL_INTS, NOT_TEXT, st.just(""), st.text(" \t\n", min_size=1),
                                        BAD_TEMPLATE))
        return doc, "prompt", "prompt", False, None
    if kind == "task_enc":
        task["encoder_input"] = draw(st.one_of(SMALL_INTS, NOT_TEXT, BAD_TEMPLATE))
        return doc, "encoder_input", "encoder_input", False, None
    if kind == "task_labels":
        doc["tasks"][0]["labels"] = draw(st.one_of(
            st.none(), TEXT, SMALL_INTS, NOT_TEXT, st.just(["pos"]), st.just(["pos", "pos"]),
            st.just([{"name": ""}, "neg"]), st.just([{"description": "x"}, "neg"]),
            st.just(["pos", {"name": "neg", "description": [1]}]), st.just(["pos", {"name": "neg", "text": {}}]),
            st.lists(st.one_of(SMALL_INTS, st.none(), NOT_TEXT), min_size=2, max_size=3)))
        return doc, LABELS_FIELD, "labels", False, None
    if kind == "mc_labels":
        doc["tasks"][1]["labels"] = draw(st.one_of(st.lists(TEXT, max_size=3), SMALL_INTS, TEXT, NOT_TEXT))
        return doc, "labels", "labels", False, None
    if kind == "task_metrics":
        task["metrics"] = draw(st.one_of(
            st.just([]), st.none(), SMALL_INTS, st.dictionaries(TEXT, TEXT, max_size=1),
            st.lists(st.one_of(SMALL_INTS, st.none(), NOT_TEXT), min_size=1, max_size=2),
            st.lists(st.sampled_from(["bad metric!", "acc uracy", "f1-macro?", "x" * 300 + "!", "a\x00b", "!!"]),
                     min_size=1, max_size=2)))
        return doc, "metrics", "metrics", False, None
    if kind == "task_data":
        data = draw(st.one_of(
            st.one_of(st.none(), TEXT, SMALL_INTS, st.lists(TEXT, max_size=2)).map(lambda v: ("data", v)),
            st.just(("data", {})), st.just(("data", {"file": "cls.jsonl"})),
            st.one_of(st.none(), SMALL_INTS, NOT_TEXT).map(lambda v: ("data.path", {"path": v})),
            st.sampled_from(["../cls.jsonl", "/etc/passwd", "/etc/hostname.jsonl", "nope.jsonl", "cls.txt", "",
                             "a\x00b.jsonl", "d" * 300 + ".jsonl", "sub/", ".", "cls.jsonl/x.jsonl",
                             "../../../../etc/passwd.csv", "~/x.jsonl"]).map(lambda p: ("data.path", {"path": p})),
            TEXT.filter(lambda s: ".." not in s).map(lambda s: ("data.path", {"path": "missing-" + s})),
            st.one_of(st.none(), SMALL_INTS, TEXT).map(lambda v: ("data.hf.path", {"hf": v})),
            st.just(("data.hf.path", {"hf": {"name": "x"}}))))
        field, task["data"] = data
        return doc, field, "data", False, None
    if kind == "task_unknown":
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in task and k not in ("labels", "metrics", "encoder_input",
                                                                            "description")))
        task[key] = draw(ANY_VALUE)
        return doc, key, key, False, None
    if kind == "task_desc":
        task["description"] = draw(NOT_TEXT)
        return doc, "description", "description", False, None
    # unused_field: the prompt names a field no item has -> the data file, line 1, that field
    name = draw(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True).filter(
        lambda s: s not in ("text", "question", "id", "label", "split", "difficulty", "choices", "answer")))
    task["prompt"] = f"{{{name}}}?"
    return doc, name, "", False, ("cls.jsonl", "mc.csv")[ti]


@budget(150)
def test_suite_yaml_schema_errors_name_file_line_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, case=suite_yaml_case())
    def check(case):
        fuzz_count()
        doc, field, key, missing, data_file = case
        with sandbox(tmp_path) as d:
            text = write_suite(d, doc)
            exc = located(raises(lambda: load_suite(str(d))), file=data_file or "suite.yaml", field=field)
            if data_file:
                assert exc.line == (1 if data_file.endswith(".jsonl") else 2)
            elif missing:
                assert exc.line == 1 or text.split("\n")[exc.line - 1].lstrip().startswith("- "), (exc, text)
            else:
                assert key_on_line(text, exc.line, key), (str(exc), text)

    check()


# ------------------------------------------------------------------------------- JSONL item files
@st.composite
def jsonl_case(draw: st.DrawFn) -> tuple[bytes, Any, Any]:
    """(cls.jsonl bytes, expected line (or ANY/None), expected field (or ANY/None))."""
    rows: list[Any] = [dict(r) for r in CLS_ROWS]
    k = draw(st.integers(1, len(rows)))
    row = rows[k - 1]
    kind = draw(st.sampled_from(["missing", "id", "text", "label", "split", "difficulty", "dup", "not_object",
                                 "garbage", "huge", "deep", "bigint", "bad_utf8", "nul_raw", "ctrl", "surrogate",
                                 "nul_escaped", "utf16", "empty", "all_train"]))
    if kind == "missing":
        key = draw(st.sampled_from(["id", "text", "label"]))
        del row[key]
        return jsonl_bytes(rows), k, key
    if kind == "id":
        row["id"] = draw(st.one_of(st.none(), st.sampled_from(["", "  ", "\t"]), NOT_TEXT,
                                   st.floats(allow_nan=False, allow_infinity=False)))
        return jsonl_bytes(rows), k, "id"
    if kind == "text":
        row["text"] = draw(st.one_of(st.none(), NOT_TEXT))
        return jsonl_bytes(rows), k, "text"
    if kind == "label":
        row["label"] = draw(st.one_of(st.none(), SMALL_INTS, NOT_TEXT, TEXT.filter(lambda s: s not in ("pos", "neg")),
                                      st.sampled_from(["POS", " pos", "pos ", "positive", "neg\n"])))
        return jsonl_bytes(rows), k, "label"
    if kind == "split":
        row["split"] = draw(st.one_of(TEXT.filter(lambda s: s and s not in ("test", "train")),
                                      SMALL_INTS.filter(bool), st.just(True), st.lists(SMALL_INTS, min_size=1)))
        return jsonl_bytes(rows), k, "split"
    if kind == "difficulty":
        row["difficulty"] = draw(st.one_of(TEXT.filter(lambda s: s not in ("easy", "medium", "hard")), SMALL_INTS,
                                           NOT_TEXT))
        return jsonl_bytes(rows), k, "difficulty"
    if kind == "dup":
        assume(k >= 2)
        row["id"] = rows[draw(st.integers(0, k - 2))]["id"]
        return jsonl_bytes(rows), k, "id"
    if kind == "not_object":
        rows[k - 1] = json.dumps(draw(st.one_of(st.none(), SMALL_INTS, TEXT, st.lists(TEXT, max_size=3),
                                                st.booleans(), st.floats(allow_nan=False, allow_infinity=False))))
        return jsonl_bytes(rows), k, None
    if kind == "garbage":
        rows[k - 1] = draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                                   min_size=1, max_size=60).filter(lambda s: s.strip()))
        return jsonl_bytes(rows), k, None
    if kind == "huge":
        row["text"] = "x" * draw(st.integers(MAX_LINE_CHARS, MAX_LINE_CHARS + 5000))
        return jsonl_bytes(rows), k, None
    if kind == "deep":
        depth = draw(st.integers(1_000, 45_000))
        rows[k - 1] = f'{{"id": "d{k}", "text": {"[" * depth}{"]" * depth}, "label": "pos"}}'
        return jsonl_bytes(rows), k, None
    if kind == "bigint":
        rows[k - 1] = f'{{"id": {"7" * draw(st.integers(4_301, 20_000))}, "text": "t", "label": "pos"}}'
        return jsonl_bytes(rows), k, None
    if kind in ("bad_utf8", "nul_raw"):
        raw = jsonl_bytes(rows)
        starts = [0] + [i + 1 for i, b in enumerate(raw) if b == 10]
        line_bytes = raw[starts[k - 1]:starts[k] - 1]
        at = starts[k - 1] + draw(st.integers(0, len(line_bytes)))
        bad = draw(st.sampled_from([b"\xff", b"\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80",
                                    b"\xf8\x88\x80\x80\x80"])) if kind == "bad_utf8" else b"\x00"
        if kind == "nul_raw":  # a NUL anywhere but between tokens is invalid JSON; keep it inside the text value
            at = starts[k - 1] + line_bytes.index(b'"text": "') + len(b'"text": "')
        return raw[:at] + bad + raw[at:], k, None
    if kind == "ctrl":
        c = draw(st.sampled_from([chr(i) for i in range(32) if chr(i) not in "\n\r"]))
        rows[k - 1] = f'{{"id": "x{k}", "text": "a{c}b", "label": "pos"}}'
        return jsonl_bytes(rows), k, None
    if kind == "surrogate":
        key = draw(st.sampled_from(["text", "id"]))
        row[key] = "ok \ud800 " + draw(TEXT)
        return jsonl_bytes(rows), k, key
    if kind == "nul_escaped":
        row["text"] = "a\x00b"
        return jsonl_bytes(rows), k, "text"
    if kind == "utf16":
        return jsonl_bytes(rows).decode().encode(draw(st.sampled_from(["utf-16", "utf-32"]))), 1, None
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"\n\n   \n", b"\t\n"])), None, None
    for r in rows:  # all_train
        r["split"] = "train"
    return jsonl_bytes(rows), None, "split"


@budget(150)
def test_jsonl_item_errors_name_file_line_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, case=jsonl_case())
    def check(case):
        fuzz_count()
        data, line, field = case
        with sandbox(tmp_path) as d:
            write_suite(d, cls=data)
            located(raises(lambda: load_suite(str(d))), file="cls.jsonl", line=line, field=field)

    check()


# --------------------------------------------------------------------------------- CSV item files
def _bad_answer(s: str) -> bool:
    return not re.fullmatch(r"-?[0-9]{1,9}", s.strip()) or int(s.strip()) not in (0, 1)


@st.composite
def csv_case(draw: st.DrawFn) -> tuple[bytes, Any, Any]:
    """(mc.csv bytes, expected line, expected field); the header is line 1, row k is line k + 1."""
    rows = [list(r) for r in MC_ROWS]
    k = draw(st.integers(1, len(rows)))
    row = rows[k - 1]
    line = k + 1
    kind = draw(st.sampled_from(["choices", "answer", "id", "dup", "short", "long", "split", "nul", "bad_utf8",
                                 "huge_field", "unterminated", "no_column", "empty", "surrogate_json"]))
    header = list(MC_HEADER)
    if kind == "choices":
        row[2] = draw(st.one_of(
            st.sampled_from(["", "not json", "[1,", "{", "a|b", "null", "5", '"str"', '{"a": 1}', "[]", '["a"]',
                             '["a", "a"]', '["a", ""]', '["a", " "]', "[1, 2]", '["a", null]', "[" * 5000,
                             json.dumps([str(i) for i in range(11)]), "[" + "9" * 5000 + "]"]),
            st.lists(TEXT, max_size=12).filter(lambda c: not (2 <= len(c) <= 10 and all(x.strip() for x in c)
                                                               and len(set(c)) == len(c))).map(json.dumps)))
        return csv_bytes(header, rows), line, "choices"
    if kind == "answer":
        row[3] = draw(st.one_of(st.sampled_from(["2", "5", "-1", "x", "", "1.0", "²", "٣", "9" * 5000, " ", "true",
                                                 "+1", "0x1", "1e0", "١", "2\x1f", "\x1c3"]),
                                st.text(SAFE_CHARS.filter(lambda c: c not in "\n\r"), max_size=12).filter(_bad_answer)))
        return csv_bytes(header, rows), line, "answer"
    if kind == "id":
        row[0] = draw(st.sampled_from(["", " ", "\t"]))
        return csv_bytes(header, rows), line, "id"
    if kind == "dup":
        assume(k >= 2)
        row[0] = rows[draw(st.integers(0, k - 2))][0]
        return csv_bytes(header, rows), line, "id"
    if kind == "short":  # fewer values than columns: the question (or later cells) are missing
        rows[k - 1] = row[:draw(st.integers(1, 1))]
        return csv_bytes(header, rows), line, "question"
    if kind == "long":
        rows[k - 1] = row + draw(st.lists(TEXT.map(lambda s: s.replace("\n", "").replace("\r", "")), min_size=1,
                                          max_size=3))
        return csv_bytes(header, rows), line, None
    if kind == "split":
        header.append("split")
        for r in rows:
            r.append("test")
        row[4] = draw(TEXT.filter(lambda s: s.strip() and s not in ("test", "train") and "\n" not in s
                                  and "\r" not in s))
        return csv_bytes(header, rows), line, "split"
    if kind == "nul":
        col = draw(st.sampled_from([0, 1]))
        row[col] = row[col] + "\x00"
        return csv_bytes(header, rows), line, ("id", "question")[col]
    if kind == "bad_utf8":
        raw = csv_bytes(header, rows)
        starts = [0] + [i + 1 for i, b in enumerate(raw) if b == 10]
        at = starts[line - 1] + draw(st.integers(0, starts[line] - starts[line - 1] - 1))
        return raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])) + raw[at:], line, None
    if kind == "huge_field":
        row[1] = "q" * draw(st.integers(131_073, 140_000))
        return csv_bytes(header, rows), line, None
    if kind == "unterminated":
        raw = csv_bytes(header, rows).decode()
        lines = raw.split("\n")
        lines[line - 1] = lines[line - 1].replace(",", ',"', 1)
        return "\n".join(lines).encode(), ANY, None
    if kind == "no_column":
        drop = draw(st.sampled_from([1, 2, 3]))
        header.pop(drop)
        rows = [r[:drop] + r[drop + 1:] for r in rows]
        return csv_bytes(header, rows), 2, MC_HEADER[drop]
    if kind == "surrogate_json":
        row[2] = '["a\\ud800", "b"]'
        return csv_bytes(header, rows), line, "choices"
    return b"", None, None  # empty


@budget(100)
def test_csv_item_errors_name_file_line_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, case=csv_case())
    def check(case):
        fuzz_count()
        data, line, field = case
        with sandbox(tmp_path) as d:
            write_suite(d, mc=data)
            exc = located(raises(lambda: load_suite(str(d))), file="mc.csv", line=line, field=field)
            if line is ANY:
                assert 2 <= exc.line <= data.count(b"\n") + 1

    check()


# ---------------------------------------------------------------------- YAML damage (all YAML files)
BASE_MODELS: dict[str, Any] = {"models": [
    {"name": "tiny", "kind": "encoder", "family": "test", "params": "1M", "licence": "MIT", "hub": "org/tiny",
     "precision_note": "fp32", "trust_remote_code": False,
     "offline": {"packages": ["pkg-a"], "assembly": "folder", "source": "model",
                 "sha256": {"model.safetensors": "ab" * 32}}},
    {"name": "small", "kind": "causal-lm", "hub": "org/small"}]}
BASE_CONFIG: dict[str, Any] = {"suites": ["finance"], "models": ["minilm-l6"], "variants": ["fp32"], "limit": 2,
                               "repeats": 1, "meter": "estimate", "models_file": str(MODELS_YAML),
                               "gates": {"min_accuracy": 0.1}}
YAML_KINDS = {  # kind -> (file name, base document, a text field's key path for a tagged value)
    "suite": ("suite.yaml", BASE_SUITE, ("description",)),
    "models": ("models.yaml", BASE_MODELS, ("models", 0, "family")),
    "config": ("eval.yaml", BASE_CONFIG, ("meter",)),
}


def load_kind(kind: str, d: Path) -> Any:
    if kind == "suite":
        return load_suite(str(d))
    if kind == "models":
        return load_registry(d / "models.yaml")
    return load_config(d / "eval.yaml")


def _set(doc: Any, path: tuple, value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


@st.composite
def yaml_damage(draw: st.DrawFn, kind: str) -> tuple[bytes, Any, Any, str]:
    """(file bytes, expected line, expected field, family) for damage at the YAML level."""
    name, base, text_path = YAML_KINDS[kind]
    marker = "__MARK__"
    doc = copy.deepcopy(base)
    family = draw(st.sampled_from(["object_tag", "wrong_type_tag", "deep_flow", "deep_block", "laughs", "recursive",
                                   "bad_utf8", "control_char", "utf16", "empty", "dup_key", "non_text_key",
                                   "syntax", "multi_doc", "too_big"]))
    if family in ("object_tag", "wrong_type_tag", "deep_flow", "deep_block", "laughs", "recursive"):
        _set(doc, text_path, marker)
        text = dump_yaml(doc)
        line = text.split("\n").index(next(x for x in text.split("\n") if marker in x)) + 1
        indent = len(text.split("\n")[line - 1]) - len(text.split("\n")[line - 1].lstrip())
        if family == "object_tag":
            value = draw(st.sampled_from(OBJECT_TAGS)).replace("\n  ", "\n" + " " * (indent + 2))
            return text.replace(marker, value).encode(), line, None, family
        if family == "wrong_type_tag":
            value = draw(st.sampled_from(WRONG_TYPE_TAGS)).replace("{{", "{").replace("}}", "}")
            return text.replace(marker, value).encode(), ANY, text_path[-1], family
        if family == "deep_flow":
            depth = draw(st.integers(65, 20_000))
            opener, closer = draw(st.sampled_from([("[", "]"), ("{a: ", "}")]))
            return text.replace(marker, opener * depth + "x" + closer * depth).encode(), line, None, family
        if family == "deep_block":
            depth = draw(st.integers(65, 300))
            nested = "".join("\n" + " " * (indent + 2 * (i + 1)) + "-" for i in range(depth)) + " x"
            return text.replace(marker, nested).encode(), ANY, None, family
        if family == "laughs":
            width, levels = draw(st.integers(8, 12)), draw(st.integers(6, 9))
            parts = [f"&a0 [{', '.join(['lol'] * width)}]"]
            parts += [f"&a{i} [{', '.join([f'*a{i - 1}'] * width)}]" for i in range(1, levels)]
            return text.replace(marker, "[" + ", ".join(parts) + "]").encode(), ANY, None, family
        return text.replace(marker, "&r [*r]").encode(), line, None, family  # recursive
    text = dump_yaml(doc)
    lines = text.split("\n")
    if family in ("bad_utf8", "control_char"):
        n = draw(st.integers(1, len(lines) - 1))
        at = draw(st.integers(0, len(lines[n - 1])))
        if family == "bad_utf8":
            bad = draw(st.sampled_from([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\x80"]))
        else:
            bad = draw(st.sampled_from([b"\x00", b"\x01", b"\x07", b"\x08", b"\x0b", b"\x1b", b"\x7f", b"\x0e"]))
        before = "\n".join(lines[:n - 1]) + ("\n" if n > 1 else "") + lines[n - 1][:at]
        return before.encode() + bad + text[len(before):].encode(), n, None, family
    if family == "utf16":
        return text.encode(draw(st.sampled_from(["utf-16", "utf-32", "utf-16-le"]))), ANY, None, family
    if family == "empty":
        data = draw(st.sampled_from([b"", b"\n", b"# just a comment\n", b"---\n", b"  \n\n", b"~\n", b"null\n"]))
        return data, (None if kind == "models" else 1), "models" if kind == "models" else None, family
    if family == "dup_key":
        key = draw(st.sampled_from(list(base)))
        return (text + f"{key}: again\n").encode(), len(lines), key, family
    if family == "non_text_key":
        key = draw(st.sampled_from(["1", "2.5", "true", "null", "~", "[a, b]", "{a: b}", "2001-01-01"]))
        k = f"? {key}\n:" if key.startswith(("[", "{")) else f"{key}:"
        return (text + f"{k} x\n").encode(), len(lines), ANY, family
    if family == "syntax":
        bad = draw(st.sampled_from(["key: [unclosed", "key: {a: 1", "key: 'unterminated", "\tkey: tab", "key: ]",
                                    "key: @reserved", "key: `tick", "a: b: c", "key: *undefined_alias", "%BAD dir",
                                    "  - misplaced", "key: \"bad \\q escape\""]))
        return (text + bad + "\n").encode(), ANY, None, family
    if family == "multi_doc":
        return (text + "---\n" + text).encode(), ANY, None, family
    return text.encode() + b"#" * 10_000_001, None, None, family  # too_big


@pytest.mark.parametrize("kind", list(YAML_KINDS))
@budget(40)
def test_yaml_damage_names_file_and_line(bud, kind, tmp_path, fuzz_count):
    @fuzz(bud, case=yaml_damage(kind))
    def check(case):
        data, line, field, family = case
        assume(family != "too_big" or not bud.slow)  # 10 MB per case: the default run covers it
        fuzz_count()
        name = YAML_KINDS[kind][0]
        with sandbox(tmp_path) as d:
            write_suite(d)
            (d / name).write_bytes(data)
            sentinel = d / "pwned"
            if family == "object_tag":
                (d / name).write_bytes(data.replace(b"{sentinel}", str(sentinel).encode()))
            exc = raises(lambda: load_kind(kind, d))
            located(exc, file=name, line=line, field=field)
            assert not sentinel.exists(), "a YAML tag ran a command"

    check()


# ------------------------------------------------------------------------------------- models.yaml
@st.composite
def models_case(draw: st.DrawFn) -> tuple[dict, Any, bool]:
    """(doc, expected field, missing?)."""
    doc = copy.deepcopy(BASE_MODELS)
    i = draw(st.sampled_from([0, 1]))
    entry = doc["models"][i]
    kind = draw(st.sampled_from(["missing", "name", "kind", "text_field", "bool_field", "unknown", "no_source",
                                 "dup", "offline", "not_mapping", "models"]))
    if kind == "missing":
        key = draw(st.sampled_from(["name", "kind"]))
        del entry[key]
        return doc, key, True
    if kind == "name":
        entry["name"] = draw(st.one_of(st.none(), SMALL_INTS, NOT_TEXT, st.sampled_from(["", "-x", "a b", "a/b",
                                                                                         "x" * 65, "a\nb", "é"])))
        return doc, "name", False
    if kind == "kind":
        entry["kind"] = draw(st.one_of(st.none(), SMALL_INTS, NOT_TEXT,
                                       TEXT.filter(lambda s: s not in ("encoder", "causal-lm"))))
        return doc, "kind", False
    if kind == "text_field":
        key = draw(st.sampled_from(["family", "params", "licence", "hub", "path", "precision_note", "revision"]))
        entry[key] = draw(NOT_TEXT.filter(lambda v: not isinstance(v, bool)))
        return doc, key, False
    if kind == "bool_field":
        key = draw(st.sampled_from(["trust_remote_code", "allow_pickle"]))
        entry[key] = draw(st.one_of(SMALL_INTS, TEXT, st.lists(SMALL_INTS, min_size=1)))
        return doc, key, False
    if kind == "unknown":
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in ("name", "kind", "family", "params", "licence", "hub", "path",
                                                          "offline", "precision_note", "trust_remote_code",
                                                          "allow_pickle", "revision")))
        entry[key] = draw(ANY_VALUE)
        return doc, key, False
    if kind == "no_source":
        for key in ("hub", "path", "offline"):
            entry.pop(key, None)
        return doc, "hub", False
    if kind == "dup":
        doc["models"][1]["name"] = "tiny"
        return doc, "name", False
    if kind == "not_mapping":
        doc["models"][i] = draw(st.one_of(TEXT, SMALL_INTS, st.lists(SMALL_INTS, max_size=2)))
        return doc, "models", False
    if kind == "models":
        doc = draw(st.one_of(st.just({"models": None}), st.just({"model": doc["models"]}),
                             st.builds(lambda v: {"models": v},
                                       st.one_of(TEXT, SMALL_INTS, st.dictionaries(TEXT, TEXT)))))
        return doc, "models", False
    off = doc["models"][0]["offline"]
    key, value = draw(st.one_of(
        st.tuples(st.just("offline"), st.one_of(TEXT, SMALL_INTS, st.lists(TEXT, max_size=2))),
        st.tuples(st.just("offline.packages"), st.one_of(st.none(), st.just([]), TEXT, st.lists(SMALL_INTS,
                                                                                                 min_size=1))),
        st.tuples(st.just("offline.assembly"), st.one_of(st.none(), SMALL_INTS, TEXT.filter(
            lambda s: s not in ("folder", "zip-parts", "concat")))),
        st.tuples(st.just("offline.source"), st.one_of(st.none(), SMALL_INTS, NOT_TEXT)),
        st.tuples(st.just("offline.sha256"), st.one_of(st.none(), st.just({}), TEXT, st.just({"f": "abc"}),
                                                       st.just({"f": "AB" * 32}), st.just({"f": 5}))),
        st.tuples(st.just("offline.format"), st.one_of(SMALL_INTS, TEXT.filter(lambda s: s not in ("hf", "gguf"))))))
    if key == "offline":
        doc["models"][0]["offline"] = value
    else:
        off[key.split(".")[1]] = value
    return doc, key, False


@budget(100)
def test_models_yaml_errors_name_file_line_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, case=models_case())
    def check(case):
        fuzz_count()
        doc, field, _missing = case
        with sandbox(tmp_path) as d:
            text = dump_yaml(doc)
            (d / "models.yaml").write_text(text)
            # evaluator/models.py names no line for a top-level 'models:' problem (not this task's file)
            exc = located(raises(lambda: load_registry(d / "models.yaml")), file="models.yaml",
                          line=None if field == "models" else ANY, field=field)
            if exc.line is not None:
                assert 1 <= exc.line <= len(text.split("\n"))

    check()


# ----------------------------------------------------------------------------------- run configs
CONFIG_BAD_VALUES: dict[str, st.SearchStrategy] = {
    "suites": st.one_of(st.just([]), SMALL_INTS, st.lists(SMALL_INTS, min_size=1, max_size=2), st.just([""]),
                        st.just(["no-such-suite-xyz"]), st.just(["/no/such/folder"]), st.just(["fin\x00ance"]),
                        st.just(["x" * 5000])),
    "models": st.one_of(st.just([]), SMALL_INTS, st.dictionaries(TEXT, TEXT, min_size=1), st.just(["nope-model"]),
                        st.just(["minilm-l6", "qwen"]), st.just(["y" * 5000])),
    "variants": st.one_of(st.just([]), st.just(["nope"]), st.just(["fp32+bf16"]), st.just(["+"]), st.just([5])),
    "limit": st.one_of(st.integers(max_value=0), TEXT, st.floats(allow_nan=False), st.booleans(), st.lists(
        SMALL_INTS, max_size=1)),
    "repeats": st.one_of(st.integers(max_value=0), st.integers(min_value=101), st.none(), TEXT),
    "batch_size": st.one_of(st.integers(max_value=0), st.integers(min_value=1025), st.floats(allow_nan=False)),
    "threads": st.one_of(st.integers(max_value=0), TEXT, st.booleans()),
    "device": st.one_of(TEXT.filter(lambda s: s not in ("auto", "cpu", "cuda")), SMALL_INTS, st.none()),
    "meter": st.one_of(TEXT.filter(lambda s: s not in ("auto", "estimate", "rapl", "nvml", "codecarbon")),
                       SMALL_INTS, NOT_TEXT),
    "watts_per_core": st.one_of(st.floats(max_value=0), st.floats(min_value=1001), st.just(float("nan")),
                                st.just(float("inf")), TEXT, st.booleans()),
    "idle_s": st.one_of(st.floats(max_value=-0.001), st.just(float("nan")), st.just(float("inf")),
                        st.floats(min_value=3601, max_value=1e300), TEXT),
    "country": st.one_of(st.sampled_from(["XX", "Atlantis", "usa!", "  "]), SMALL_INTS, NOT_TEXT),
    "grid_intensity": st.one_of(st.floats(max_value=-0.001), st.just(float("nan")), st.just(float("-inf")), TEXT),
    "pue": st.one_of(st.floats(max_value=0.999), st.just(float("nan")), st.none(), TEXT),
    "encoder_method": st.one_of(TEXT.filter(lambda s: s not in ("auto", "zero-shot", "probe")), SMALL_INTS),
    "models_file": st.one_of(st.just("/no/such/models.yaml"), SMALL_INTS, NOT_TEXT, st.just("a\x00b")),
    "store": st.one_of(SMALL_INTS, NOT_TEXT, st.just("s\x00.sqlite")),
    "out": st.one_of(SMALL_INTS, NOT_TEXT, st.just("o\x00ut")),
    "force": st.one_of(TEXT, SMALL_INTS, st.none(), st.lists(SMALL_INTS, max_size=1)),
    "tolerance_pts": st.one_of(st.floats(max_value=-0.001), st.just(float("nan")), TEXT, st.booleans()),
}
GATE_BAD_VALUES: dict[str, st.SearchStrategy] = {
    "min_accuracy": st.one_of(TEXT, st.booleans(), st.floats(min_value=1.001), st.floats(max_value=-0.001),
                              st.just(float("nan")), NOT_TEXT),
    "max_energy_per_1k": st.one_of(TEXT, st.floats(max_value=-0.001), st.just(float("inf"))),
    "max_accuracy_drop": st.one_of(st.just(2.0), TEXT, st.floats(max_value=-0.001)),  # 2.0: no baseline
    "baseline": st.one_of(st.sampled_from(["nocolon", ":", "minilm-l6:", ":fp32", "minilm-l6:int8", "other:fp32"]),
                          SMALL_INTS, NOT_TEXT),
    "require_on_frontier": st.one_of(SMALL_INTS, st.dictionaries(TEXT, TEXT, min_size=1),
                                     st.lists(SMALL_INTS, min_size=1, max_size=2),
                                     st.sampled_from(["nocolon", "minilm-l6:bf16", ["minilm-l6:fp32", "x:y"]])),
}


@st.composite
def config_case(draw: st.DrawFn) -> tuple[dict, str, str]:
    """(eval.yaml doc, expected field, key on the reported line)."""
    doc = copy.deepcopy(BASE_CONFIG)
    kind = draw(st.sampled_from(["field"] * 4 + ["gate", "unknown", "unknown_gate", "gates_type"]))
    if kind == "field":
        key = draw(st.sampled_from(sorted(CONFIG_BAD_VALUES)))
        doc[key] = draw(CONFIG_BAD_VALUES[key])
        assume(not (key == "models_file" and doc[key] is None))
        return doc, key, key
    if kind == "gate":
        key = draw(st.sampled_from(sorted(GATE_BAD_VALUES)))
        doc["gates"] = {key: draw(GATE_BAD_VALUES[key])}
        if key == "max_accuracy_drop" and doc["gates"][key] == 2.0:
            return doc, f"gates.{key}", key
        return doc, f"gates.{key}", key
    if kind == "unknown":
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in RunConfig.__dataclass_fields__))
        doc[key] = draw(ANY_VALUE)
        return doc, key, key
    if kind == "unknown_gate":
        key = draw(UNKNOWN_KEY.filter(lambda k: k not in GATE_BAD_VALUES))
        doc["gates"] = {key: 1}
        return doc, f"gates.{key}", key
    doc["gates"] = draw(st.one_of(TEXT, SMALL_INTS, st.lists(SMALL_INTS, max_size=2)))
    return doc, "gates", "gates"


@budget(120)
def test_run_config_errors_name_file_line_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, case=config_case())
    def check(case):
        fuzz_count()
        doc, field, key = case
        with sandbox(tmp_path) as d:
            text = dump_yaml(doc)
            (d / "eval.yaml").write_text(text)
            exc = located(raises(lambda: load_config(d / "eval.yaml")), file="eval.yaml", field=field)
            assert key_on_line(text, exc.line, key), (str(exc), text)

    check()


@budget(60)
def test_cli_bad_run_config_exits_2_without_writing(bud, tmp_path, fuzz_count, capsys):
    """`frugal run --config eval.yaml --store S`: exit 2, the file, line and field on stderr, no store."""
    @fuzz(bud, case=config_case(), preexisting=st.booleans())
    def check(case, preexisting):
        fuzz_count()
        doc, field, _key = case
        with sandbox(tmp_path) as d:
            (d / "eval.yaml").write_text(dump_yaml(doc))
            store = d / "store.sqlite"
            if preexisting:
                from evaluator.store import Store

                Store(store)
            flags = [] if field == "store" else ["--store", str(store)]  # the flag would replace the bad value
            code, _out, err = cli(["run", "--config", str(d / "eval.yaml"), *flags], capsys)
            assert_cli_refused(code, err, store, "eval.yaml", "line ", f"field '{field}'")
            assert not (tmp_path / "home" / "results.sqlite").exists()

    check()


FLAG_CASES = [  # (flags, field or None for an argparse error)
    (["--limit", "0"], "limit"), (["--limit", "-5"], "limit"), (["--limit", "abc"], None), (["--limit", "1.5"], None),
    (["--repeats", "0"], "repeats"), (["--repeats", "1000"], "repeats"), (["--batch-size", "0"], "batch_size"),
    (["--threads", "0"], "threads"), (["--device", "gpu"], None), (["--meter", "bogus"], "meter"),
    (["--watts-per-core", "-1"], "watts_per_core"), (["--watts-per-core", "nan"], "watts_per_core"),
    (["--idle-s", "-1"], "idle_s"), (["--idle-s", "inf"], "idle_s"), (["--country", "Atlantis"], "country"),
    (["--grid-intensity", "-3"], "grid_intensity"), (["--pue", "0.5"], "pue"), (["--pue", "nan"], "pue"),
    (["--encoder-method", "x"], None), (["--tolerance", "-1"], "tolerance_pts"),
    (["--suite", "no-such-suite"], "suites"), (["--model", "no-such-model"], "models"),
    (["--variant", "no-such-variant"], "variants"), (["--variant", "fp32+bf16"], "variants"),
    (["--models-file", "/no/such/models.yaml"], "models_file"), (["--baseline", "nocolon"], "gates.baseline"),
    (["--max-accuracy-drop", "2"], "gates.max_accuracy_drop"), (["--min-accuracy", "1.5"], "gates.min_accuracy"),
    (["--min-accuracy", "nan"], "gates.min_accuracy"), (["--require-on-frontier", "minilm-l6:bf16"],
                                                        "gates.require_on_frontier"),
    (["--baseline", "minilm-l6:int8", "--max-accuracy-drop", "1"], "gates.baseline"),
    (["--store", "a\x00b"], "store"), (["--unknown-flag"], None), (["--limit"], None),
]


@budget(40)
def test_cli_bad_flags_exit_2_without_writing(bud, tmp_path, fuzz_count, capsys):
    """Flags alone or over a valid eval.yaml: a bad flag names the command line and its field."""
    (tmp_path / "eval.yaml").write_text(dump_yaml(BASE_CONFIG))

    @fuzz(bud, case=st.sampled_from(FLAG_CASES), with_config=st.booleans())
    def check(case, with_config):
        fuzz_count()
        flags, field = case
        with sandbox(tmp_path) as d:
            store = d / "store.sqlite"
            base = ["--config", str(tmp_path / "eval.yaml")] if with_config else [
                "--suite", "finance", "--model", "minilm-l6", "--variant", "fp32", "--limit", "2",
                "--models-file", str(MODELS_YAML)]
            if "\x00" in "".join(flags):
                with pytest.raises(ValidationError) as ei:  # a NUL cannot reach argv; build the config directly
                    from evaluator.cli import build_config, make_parser

                    build_config(make_parser().parse_args(["run", *base, *flags]))
                located(ei.value, file="command line", line=None, field=field)
                return
            code, _out, err = cli(["run", *base, *flags, "--store", str(store)], capsys)
            if field is None:
                assert_cli_refused(code, err, store, "usage:")
            else:
                assert_cli_refused(code, err, store, "command line", f"field '{field}'")

    check()


# ------------------------------------------------------------------------- suites through the CLI
@budget(50)
def test_cli_bad_suite_exits_2_without_writing(bud, tmp_path, fuzz_count, capsys):
    """`frugal run --suite FOLDER ...` on a malformed suite: exit 2, the data or suite file named, no store."""
    @fuzz(bud, case=st.one_of(suite_yaml_case().map(lambda c: ("yaml", c)), jsonl_case().map(lambda c: ("jsonl", c)),
                              csv_case().map(lambda c: ("csv", c))))
    def check(case):
        fuzz_count()
        which, c = case
        with sandbox(tmp_path) as d:
            if which == "yaml":
                write_suite(d, c[0])
                name = c[4] or "suite.yaml"
            elif which == "jsonl":
                write_suite(d, cls=c[0])
                name = "cls.jsonl"
            else:
                write_suite(d, mc=c[0])
                name = "mc.csv"
            store = d / "store.sqlite"
            code, _out, err = cli(["run", "--suite", str(d), "--model", "minilm-l6", "--variant", "fp32", "--limit",
                                   "2", "--repeats", "1", "--meter", "estimate", "--models-file", str(MODELS_YAML),
                                   "--store", str(store)], capsys)
            assert_cli_refused(code, err, store, name)

    check()


@budget(40)
def test_cli_bad_models_file_exits_2(bud, tmp_path, fuzz_count, capsys):
    """`frugal models list` and `frugal run --models-file` on a malformed models.yaml: exit 2, no store."""
    @fuzz(bud, case=models_case(), command=st.sampled_from(["list", "run"]))
    def check(case, command):
        fuzz_count()
        with sandbox(tmp_path) as d:
            (d / "models.yaml").write_text(dump_yaml(case[0]))
            store = d / "store.sqlite"
            argv = (["models", "list", "--models-file", str(d / "models.yaml")] if command == "list" else
                    ["run", "--suite", "finance", "--model", "tiny", "--variant", "fp32", "--limit", "2",
                     "--models-file", str(d / "models.yaml"), "--store", str(store)])
            code, _out, err = cli(argv, capsys)
            assert_cli_refused(code, err, store, "models.yaml", f"field '{case[1]}'")

    check()


SUBPROCESS_CASES = [  # (id, files to write, argv after the program, text stderr must hold)
    ("object-tag-config", {"eval.yaml": "suites: !!python/object/apply:os.system ['touch {d}/pwned']\n"},
     ["run", "--config", "{d}/eval.yaml"], "line 1"),
    ("utf16-models", {"models.yaml": dump_yaml(BASE_MODELS).encode("utf-16")},
     ["models", "list", "--models-file", "{d}/models.yaml"], "UTF-16"),
    ("bad-item-suite", {"s/suite.yaml": dump_yaml(BASE_SUITE), "s/mc.csv": csv_bytes(MC_HEADER, MC_ROWS),
                        "s/cls.jsonl": jsonl_bytes(CLS_ROWS[:2] + [{"id": "c0", "text": "t", "label": "pos"}])},
     ["run", "--suite", "{d}/s", "--model", "minilm-l6", "--variant", "fp32", "--limit", "2", "--meter", "estimate"],
     "line 3, field 'id'"),
    ("deep-config", {"eval.yaml": "limit: " + "[" * 100_000 + "]" * 100_000 + "\n"},
     ["run", "--config", "{d}/eval.yaml"], "nested deeper"),
    ("bad-flag", {}, ["run", "--suite", "finance", "--limit", "0"], "field 'limit'"),
    ("hand-edited-results-report", {"r.json": '{"schema": "frugal.results", "schema_version": 2, "cells": [{"suite": '
                                              '"s", "task": "t", "model": "m", "variant": "v", "status": "ok", '
                                              '"accuracy": "high"}]}'},
     ["report", "{d}/r.json", "--out", "{d}/r.html"], "field 'cells[0].accuracy'"),
    ("truncated-results-compare", {"r.json": '{"schema": "frugal.results", "cells": [{"suite": "s", "ta'},
     ["compare", "{d}/r.json", "{d}/r.json"], "not a results.json"),
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=[c[0] for c in SUBPROCESS_CASES])
def test_real_cli_process_exits_2_without_traceback(case, tmp_path, fuzz_count):
    """A real `frugal` / `python -m evaluator.cli` process: exit 2, a clear message, no traceback, no store."""
    _id, files, argv, expect = case
    d = tmp_path / "w"
    for name, content in files.items():
        p = d / name
        p.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else content.replace("{d}", str(d)).encode()
        p.write_bytes(data)
    d.mkdir(exist_ok=True)
    store = d / "store.sqlite"
    argv = [a.replace("{d}", str(d)) for a in argv] + (["--store", str(store)] if argv[0] == "run" else [])
    frugal = Path(sys.executable).parent / "frugal"
    prog = [str(frugal)] if _id in ("bad-item-suite", "bad-flag") and frugal.exists() else [sys.executable, "-m",
                                                                                            "evaluator.cli"]
    env = {**os.environ, "FRUGAL_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    env.pop("FRUGAL_STORE", None)
    fuzz_count()
    proc = subprocess.run([*prog, *argv], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    assert expect in proc.stderr, proc.stderr
    assert not store.exists() and not (tmp_path / "home" / "results.sqlite").exists()
    assert not (d / "pwned").exists()


# ------------------------------------------------------------------------------------ table uploads
TABLE_LABELS = ["pos", "neg", "mixed"]
VALID_TEXT = st.text(SAFE_CHARS, min_size=1, max_size=30).filter(lambda s: s.strip())


@dataclass
class Table:
    """A generated upload: file name, bytes, mapping, labels (None: multiple choice), expectation."""

    filename: str
    data: bytes
    mapping: dict
    labels: list[str] | None
    line: Any = None
    field: Any = None
    row: int | None = None


def _table_bytes(fmt: str, header: list[str], rows: list[list[Any]]) -> tuple[bytes, list[int]]:
    """Bytes of a CSV or JSONL table and the physical line each row ends on."""
    if fmt == "jsonl":
        lines = []
        for r in rows:
            line = json.dumps(dict(zip(header, r, strict=True)), ensure_ascii=False)
            try:
                line.encode()
            except UnicodeEncodeError:  # an unpaired surrogate: write it escaped, as JSON allows
                line = json.dumps(dict(zip(header, r, strict=True)))
            lines.append(line)
        return ("\n".join(lines) + "\n").encode(), list(range(1, len(rows) + 1))
    buf = io.StringIO()
    w = csv.writer(buf)  # "\r\n" line ends, as spreadsheets write them (and fields with a "\r" get quoted)
    w.writerow(header)
    ends, line = [], 1
    for r in rows:
        before = buf.tell()
        w.writerow(r)
        line += buf.getvalue()[before:].count("\n")
        ends.append(line)
    return buf.getvalue().encode(), ends


@st.composite
def valid_table(draw: st.DrawFn) -> tuple[Table, str, list[str], list[list[Any]], list[int]]:
    fmt = draw(st.sampled_from(["csv", "jsonl"]))
    mc = draw(st.booleans())
    n = draw(st.integers(2, 6))
    texts = draw(st.lists(VALID_TEXT, min_size=n, max_size=n))
    if mc:
        header = ["uid", "body", "opts", "ans"]
        rows = [[f"r{i}", texts[i], json.dumps(["alpha", "beta", "gamma"]), str(i % 3)] for i in range(n)]
        mapping = {"id": "uid", "text": "body", "choices": "opts", "answer": "ans"}
        labels = None
    else:
        header = ["uid", "body", "gold"]
        rows = [[f"r{i}", texts[i], TABLE_LABELS[i % 3]] for i in range(n)]
        mapping = {"id": "uid", "text": "body", "label": "gold"}
        labels = list(TABLE_LABELS)
    data, ends = _table_bytes(fmt, header, rows)
    return Table(f"up.{fmt}", data, mapping, labels), fmt, header, rows, ends


@st.composite
def bad_table(draw: st.DrawFn) -> Table:
    """A valid table with one row (or the mapping) broken; the expected line, field (column) and row."""
    t, fmt, header, rows, _ends = draw(valid_table())
    mc = t.labels is None
    k = draw(st.integers(1, len(rows)))
    row = rows[k - 1]
    kinds = ["empty_text", "dup_id", "empty_id", "split", "nul_text", "huge_text", "bad_utf8", "mapping",
             "more_values" if fmt == "csv" else "not_object", "garbage" if fmt == "jsonl" else "more_values"]
    kinds += ["choices", "answer"] if mc else ["label"]
    if fmt == "jsonl":
        kinds += ["surrogate", "deep", "bigint"]
    kind = draw(st.sampled_from(kinds))
    col = None
    if kind == "mapping":
        key = draw(st.sampled_from(["text", "id"] + (["choices", "answer"] if mc else ["label"])))
        t.mapping = {**t.mapping, key: draw(st.sampled_from(["nope", "", "Body", 5, ["body"]]))}
        assume(t.mapping[key] != "" or key != "id")
        assume(t.mapping[key] != ["body"] or key != "choices")  # a list of columns is a valid choices mapping
        t.field, t.line = key, None
        return t
    if kind == "empty_text":
        row[1] = draw(st.sampled_from(["", " ", "\t", None] if fmt == "jsonl" else ["", " ", "\t"]))
        col = "body"
    elif kind == "dup_id":
        assume(k >= 2)
        row[0] = rows[draw(st.integers(0, k - 2))][0]
        col = "uid"
    elif kind == "empty_id":
        row[0] = draw(st.sampled_from(["", " "] + ([None, [], True] if fmt == "jsonl" else [])))
        col = "uid"
    elif kind == "split":
        header.append("part")
        for r in rows:
            r.append("test")
        row[-1] = draw(TEXT.filter(lambda s: s.strip() and s.strip().lower() not in ("test", "train")
                                   and "\n" not in s and "\r" not in s))
        t.mapping = {**t.mapping, "split": "part"}
        col = "part"
    elif kind == "nul_text":
        row[1] = row[1] + "\x00"
        col = "body"
    elif kind == "surrogate":
        row[1] = row[1] + "\ud800"
        col = "body"
    elif kind == "huge_text":
        row[1] = "h" * draw(st.integers(MAX_LINE_CHARS, MAX_LINE_CHARS + 2000))
        col = "body"
        if fmt == "csv":  # the csv module refuses fields over 131072 characters itself
            row[1] = row[1][:131_000]
    elif kind == "label":
        row[2] = draw(st.one_of(TEXT.filter(lambda s: s.strip() not in TABLE_LABELS and "\n" not in s
                                            and "\r" not in s), st.sampled_from(["POS", "positive", ""])))
        col = "gold"
    elif kind == "choices":
        row[2] = draw(st.sampled_from(["[1,", '["only"]', '["a", "a"]', json.dumps([str(i) for i in range(11)]), "",
                                       '["a", ""]', "[" * 3000]))
        col = "opts"
    elif kind == "answer":
        row[3] = draw(st.sampled_from(["3", "-1", "delta", "²", "9" * 5000, "", "1.5", "٣"]))
        col = "ans"
    data, ends = _table_bytes(fmt, header, rows)
    line = ends[k - 1]
    if kind in ("bad_utf8", "more_values", "not_object", "garbage", "deep", "bigint"):
        lines = data.split(b"\n")
        if kind == "bad_utf8":
            at = draw(st.integers(0, len(lines[line - 1])))
            lines[line - 1] = lines[line - 1][:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\x80"])) \
                + lines[line - 1][at:]
        elif kind == "more_values":
            lines[line - 1] = lines[line - 1].removesuffix(b"\r") + b",extra\r"
        elif kind == "not_object":
            lines[line - 1] = json.dumps(draw(st.one_of(st.lists(TEXT, max_size=2), SMALL_INTS, TEXT))).encode()
        elif kind == "garbage":
            lines[line - 1] = draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
                                           min_size=1, max_size=40).filter(lambda s: s.strip() and not s.strip()
                                                                          .startswith("{"))).encode()
        elif kind == "deep":
            d = draw(st.integers(2_000, 40_000))
            lines[line - 1] = f'{{"uid": "z", "body": {"[" * d}{"]" * d}}}'.encode()
        else:
            lines[line - 1] = f'{{"uid": {"1" * draw(st.integers(4_301, 9_000))}}}'.encode()
        data = b"\n".join(lines)
        t.data, t.line, t.field, t.row = data, line, None, None
        return t
    t.data, t.line, t.field, t.row = data, line, col, k
    return t


def _dest_untouched(dest: Path) -> None:
    assert not dest.exists() or not any(dest.iterdir()), list(dest.iterdir())


@budget(150)
def test_table_upload_errors_name_file_line_column(bud, tmp_path, fuzz_count):
    @fuzz(bud, t=bad_table())
    def check(t):
        fuzz_count()
        with sandbox(tmp_path) as d:
            dest = d / "uploads"
            exc = raises(lambda: suite_from_table(t.data, t.filename, t.mapping, "task", t.labels, dest))
            located(exc, file=t.filename, line=t.line, field=t.field, error_type=UploadError)
            if t.row is not None:
                assert exc.row == t.row and f"row {t.row}" in str(exc)
            _dest_untouched(dest)
            if t.line is not None and t.field is None:  # the same damage, read on its own
                located(raises(lambda: read_table(t.data, t.filename)), file=t.filename, line=t.line,
                        field=None, error_type=UploadError)

    check()


@budget(60)
def test_valid_table_with_any_text_round_trips(bud, tmp_path, fuzz_count):
    """Any text (line separators such as U+2028 and U+0085 included) survives upload and loading unchanged."""
    @fuzz(bud, case=valid_table())
    def check(case):
        fuzz_count()
        t, _fmt, _header, rows, _ends = case
        with sandbox(tmp_path) as d:
            path = suite_from_table(t.data, t.filename, t.mapping, "task", t.labels, d / "uploads")
            (task,) = load_suite(str(path)).tasks
            field = "question" if t.labels is None else "text"
            assert [i.fields[field] for i in task.items] == [r[1] for r in rows]
            assert not [p for p in (d / "uploads").iterdir() if p.name.startswith(".tmp")]

    check()


# ------------------------------------------------------------------------------------- zipped suites
def _suite_files(name: str = "zipped") -> dict[str, bytes]:
    doc = copy.deepcopy(BASE_SUITE)
    doc["name"] = name
    return {"suite.yaml": dump_yaml(doc).encode(), "cls.jsonl": jsonl_bytes(CLS_ROWS),
            "mc.csv": csv_bytes(MC_HEADER, MC_ROWS)}


def _raw_zip(entries: list[tuple[bytes, bytes]], flags: int = 0) -> bytes:
    """A stored zip written by hand, so member names can be any bytes (empty, NUL, invalid UTF-8)."""
    out, central = io.BytesIO(), []
    for name, data in entries:
        off, crc = out.tell(), zlib.crc32(data)
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, 0, 0, 0, crc, len(data), len(data), len(name), 0)
                  + name + data)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, 0, 0, 0, crc, len(data), len(data),
                                   len(name), 0, 0, 0, 0, 0, off) + name)
    start, body = out.tell(), b"".join(central)
    out.write(body + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(body), start, 0))
    return out.getvalue()


def _zip(entries: list[tuple[str | zipfile.ZipInfo, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", method) as zf:
        warnings.simplefilter("ignore")  # duplicate names are part of the fuzzing
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


MEMBER_NAME = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=40),
    st.lists(st.sampled_from(["..", ".", "", "a", "suite.yaml", "zipped", "/", "\\", "C:", "~", "x" * 300,
                              "evil.txt", "cls.jsonl", "\x00", "é", " "]), min_size=1, max_size=5).map("/".join),
    st.sampled_from(["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "C:/evil.txt", "a\\..\\evil.txt",
                     "suite.yaml/", "suite.yaml/x", "cls.jsonl/inner", "./suite.yaml", "a//b", "x/" * 60 + "y",
                     "\u202e.txt", "con", "aux.txt"]))


@st.composite
def zip_case(draw: st.DrawFn) -> bytes:
    family = draw(st.sampled_from(["random", "flipped", "truncated", "names", "names_only", "attrs", "method"]))
    base = _suite_files()
    if family == "random":
        return draw(st.one_of(st.binary(max_size=400), st.binary(max_size=200).map(lambda b: b"PK\x03\x04" + b),
                              st.binary(max_size=200).map(lambda b: b + b"PK\x05\x06" + bytes(18))))
    if family in ("flipped", "truncated"):
        method = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                       zipfile.ZIP_LZMA]))
        data = bytearray(_zip(list(base.items()), method))
        if family == "truncated":
            return bytes(data[:draw(st.integers(0, len(data) - 1))])
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if family in ("names", "names_only"):
        extra = draw(st.lists(st.tuples(MEMBER_NAME, st.binary(max_size=30)), min_size=1, max_size=4))
        entries = ([] if family == "names_only" else list(base.items())) + extra
        if draw(st.booleans()):  # written by hand: the name's bytes exactly, UTF-8 flag or not
            flags = draw(st.sampled_from([0, 0x800]))
            raw = [(n.encode("utf-8"), d) for n, d in entries]
            raw += draw(st.lists(st.tuples(st.binary(max_size=20), st.binary(max_size=10)), max_size=2))
            return _raw_zip(raw, flags)
        try:
            return _zip(entries)
        except (ValueError, OSError, UnicodeError, IndexError):  # zipfile itself refuses to write a few names
            assume(False)
    if family == "attrs":
        entries: list[tuple[str | zipfile.ZipInfo, bytes]] = list(base.items())
        info = zipfile.ZipInfo(draw(st.sampled_from(["extra.txt", "cls.jsonl", "sub/x.txt"])))
        kind = draw(st.sampled_from([stat.S_IFLNK, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK,
                                     stat.S_IFDIR, 0, stat.S_IFREG]))
        info.external_attr = (kind | 0o777) << 16
        info.flag_bits = draw(st.sampled_from([0, 0x1, 0x8, 0x800, 0x40]))
        entries.append((info, b"/etc/passwd"))
        return _zip(entries)
    data = bytearray(_zip(list(base.items()), zipfile.ZIP_STORED))  # method: an unknown compression method
    code = draw(st.sampled_from([1, 6, 9, 10, 97, 98, 99, 0xFFFF])).to_bytes(2, "little")
    for sig, off in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        pos = data.find(sig)
        while pos >= 0:
            data[pos + off:pos + off + 2] = code
            pos = data.find(sig, pos + 4)
    return bytes(data)


def _tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): (p.lstat().st_size if p.is_file() else -1) for p in root.rglob("*")}


@budget(240)
def test_zip_upload_fuzz_never_escapes_or_crashes(bud, tmp_path, fuzz_count):
    """Garbled archives and odd member names: an UploadError or a valid suite inside dest, never anything else."""
    @fuzz(bud, data=zip_case())
    def check(data):
        fuzz_count()
        with sandbox(tmp_path) as box:
            (box / "canary.txt").write_text("keep")
            dest = box / "inner" / "uploads"
            before = _tree(box)
            try:
                path = extract_suite_zip(data, dest)
            except UploadError as exc:
                assert str(exc) and "Traceback" not in str(exc)
                assert not dest.exists() or not any(dest.iterdir()), list(dest.iterdir())
            else:
                assert path.parent == dest and (path / "suite.yaml").is_file()
                assert load_suite(str(path)).name == path.name
                assert all(not p.is_symlink() for p in path.rglob("*"))
                assert not [p for p in dest.iterdir() if p.name.startswith(".tmp")]
            after = {k: v for k, v in _tree(box).items()
                     if k not in ("inner", "inner/uploads") and not k.startswith("inner/uploads/")}
            assert after == before, "something was written outside the destination folder"
            assert [p.name for p in tmp_path.iterdir()] == [box.name], "something was written beside the sandbox"

    check()


# ------------------------------------------------------------------------------------- results.json
def _results_doc() -> dict:
    """A valid results.json document, written by the real writer from real records (no model)."""
    from _synthetic import two_models

    from evaluator.report import results_dict

    return json.loads(json.dumps(results_dict(two_models()), default=str))


RESULTS_FIELDS = ["suite", "task", "model", "variant", "status", "error", "n_items", "n_correct", "accuracy",
                  "accuracy_ci_low", "accuracy_ci_high", "metrics", "energy_j", "energy_j_per_1k", "energy_method",
                  "is_estimate", "energy_components_j", "duration_s", "repeats", "params", "size_mb", "reused",
                  "on_frontier", "variant_params", "items"]
JSON_VALUE = st.recursive(st.one_of(st.none(), st.booleans(), SMALL_INTS, st.floats(allow_nan=True), TEXT),
                          lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(TEXT, kids, max_size=3)),
                          max_leaves=6)


@st.composite
def results_case(draw: st.DrawFn) -> bytes:
    """A results.json damaged the way hand edits, truncation and other tools damage one."""
    doc = _results_doc()
    kind = draw(st.sampled_from(["cell_field", "cell_drop", "top_field", "items", "cells", "truncate", "garbage",
                                 "not_object", "duplicate"]))
    if kind == "cell_field":
        doc["cells"][draw(st.integers(0, len(doc["cells"]) - 1))][draw(st.sampled_from(RESULTS_FIELDS))] = \
            draw(JSON_VALUE)
    elif kind == "cell_drop":
        doc["cells"][draw(st.integers(0, len(doc["cells"]) - 1))].pop(
            draw(st.sampled_from(["suite", "task", "model", "variant", "status", "accuracy", "energy_j"])), None)
    elif kind == "top_field":
        doc[draw(st.sampled_from(["schema", "schema_version", "run_id", "status", "environment", "meter", "cells",
                                  "frontiers", "units"]))] = draw(JSON_VALUE)
    elif kind == "items":
        c = doc["cells"][0]
        c["items"] = draw(st.one_of(JSON_VALUE, st.fixed_dictionaries(
            {k: st.lists(st.one_of(SMALL_INTS, TEXT, st.none()), max_size=4) for k in ("id", "gold", "pred")})))
    elif kind == "cells":
        doc["cells"] = draw(st.lists(JSON_VALUE, max_size=3))
    elif kind == "duplicate":
        doc["cells"].append(dict(doc["cells"][0]))
    elif kind == "not_object":
        return json.dumps(draw(st.one_of(st.lists(JSON_VALUE, max_size=2), TEXT, SMALL_INTS))).encode()
    data = json.dumps(doc).encode()
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "garbage":
        return draw(st.one_of(st.binary(max_size=64), st.just(b"\xff\xfe" + data[:50]), st.just(data + b"}x")))
    return data


def _check_results_readable_or_refused(path: Path) -> None:
    """read_results_json returns a result that every writer can render, or raises ValidationError naming the file."""
    from evaluator.report import read_results_json, results_dict
    from evaluator.report.writers import render_summary_md

    try:
        res = read_results_json(path)
    except ValidationError as exc:
        assert exc.file == str(path) and str(path) in str(exc) and "Traceback" not in str(exc)
        if exc.field:
            assert f"field '{exc.field}'" in str(exc)
        return
    except Exception as exc:  # noqa: BLE001 - anything else is the bug this family looks for
        raise AssertionError(f"{type(exc).__name__} escaped read_results_json: {exc}") from exc
    results_dict(res)
    render_summary_md(res)


@budget(120)
def test_results_json_is_read_back_or_refused_naming_file_and_field(bud, tmp_path, fuzz_count):
    @fuzz(bud, data=results_case())
    def check(data):
        fuzz_count()
        with sandbox(tmp_path) as d:
            (d / "results.json").write_bytes(data)
            _check_results_readable_or_refused(d / "results.json")

    check()


@budget(30)
def test_cli_report_and_compare_on_a_damaged_results_json_exit_0_or_2(bud, tmp_path, fuzz_count, capsys):
    """`frugal report` / `frugal compare` on a damaged results.json: exit 0 or 2, never a traceback."""
    from _synthetic import results_json, two_models

    good = results_json(tmp_path / "good.json", two_models())

    @fuzz(bud, data=results_case(), command=st.sampled_from(["report", "compare"]))
    def check(data, command):
        fuzz_count()
        with sandbox(tmp_path) as d:
            bad = d / "results.json"
            bad.write_bytes(data)
            argv = (["report", str(bad), "--out", str(d / "r.html")] if command == "report" else
                    ["compare", str(good), str(bad)])
            code, _out, err = cli(argv, capsys)
            assert code in (0, 2), (code, err)
            assert "Traceback" not in err and "internal error" not in err, err
            if code == 2:
                assert str(bad) in err, err

    check()


# ------------------------------------------------------------------------------------ the SQLite results store
@st.composite
def store_damage(draw: Any) -> tuple[str, int, bytes]:
    """One way a store file gets damaged: cut short, bytes overwritten (header, a page, anywhere), garbage appended."""
    kind = draw(st.sampled_from(["truncate", "overwrite", "header", "zero_page", "append"]))
    offset = draw(st.integers(0, 120_000))
    data = draw(st.binary(min_size=1, max_size=64))
    return kind, offset, data


def _damaged_store(src: Path, dst: Path, case: tuple[str, int, bytes]) -> None:
    kind, offset, data = case
    raw = bytearray(src.read_bytes())
    offset %= max(1, len(raw))
    if kind == "truncate":
        raw = raw[:offset]
    elif kind == "overwrite":
        raw[offset:offset + len(data)] = data
    elif kind == "header":
        raw[offset % 100:offset % 100 + len(data)] = data
    elif kind == "zero_page":
        page = int.from_bytes(raw[16:18], "big") or 4096
        start = (offset // page) * page
        raw[start:start + page] = bytes(page)
    else:
        raw += data
    dst.write_bytes(bytes(raw))


@budget(60)
def test_a_damaged_store_is_read_or_refused_naming_it(bud, tmp_path, fuzz_count, capsys):
    """`frugal runs` and `frugal report` on a damaged store: exit 0 or 2 naming the store, never a traceback."""
    base = tmp_path / "base.sqlite"
    shutil.copy(Path(__file__).parent / "fixtures" / "v1_store.sqlite", base)
    with sqlite3.connect(base) as db:  # the fixture is one run of 24 cells, written by the first release
        run_id = db.execute("SELECT run_id FROM runs").fetchone()[0]

    @fuzz(bud, case=store_damage(), command=st.sampled_from(["runs", "report"]))
    def check(case, command):
        fuzz_count()
        with sandbox(tmp_path) as d:
            store = d / "s.sqlite"
            _damaged_store(base, store, case)
            argv = (["runs", "--store", str(store)] if command == "runs" else
                    ["report", run_id, "--store", str(store), "--out", str(d / "r.html")])
            code, _out, err = cli(argv, capsys)
            assert code in (0, 2), (case[0], code, err)
            assert "Traceback" not in err and "internal error" not in err, err
            if code == 2:
                assert str(store) in err, err

    check()
