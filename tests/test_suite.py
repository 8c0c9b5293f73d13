"""Suites: the built-ins load and meet their size targets; bad input names file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evaluator.errors import FrugalError, ValidationError
from evaluator.suite import builtin_suites, load_suite, render

MIN_ITEMS = {  # task -> (minimum total items, type)
    ("finance", "headline-sentiment"): 150, ("finance", "numeracy"): 100,
    ("health", "triage"): 150, ("health", "yes-no-maybe"): 100,
    ("climate", "claim-evidence"): 150, ("climate", "report-relevance"): 100,
}


def test_builtin_suites_meet_size_and_split_targets():
    assert set(builtin_suites()) >= {"finance", "health", "climate"}
    for (suite, task), minimum in MIN_ITEMS.items():
        t = next(t for t in load_suite(suite).tasks if t.name == task)
        total = len(t.items) + len(t.train_items)
        assert total >= minimum, (suite, task, total)
        assert 0.15 <= len(t.train_items) / total <= 0.25, "about 20 % train"
        # every label (or answer position) is used in the test split: the task can separate models
        assert len({i.gold for i in t.items}) == len(t.labels or t.items[0].choices)
        assert len({i.difficulty for i in t.items}) == 3


def test_builtin_items_have_licence_and_unique_ids():
    for name, folder in builtin_suites().items():
        assert (folder / "LICENCE.md").is_file(), name
        for t in load_suite(name).tasks:
            ids = [i.id for i in (*t.items, *t.train_items)]
            assert len(ids) == len(set(ids))


def _write_suite(tmp: Path, yaml_text: str, rows: list[str] | None = None, name: str = "data.jsonl") -> Path:
    (tmp / "suite.yaml").write_text(yaml_text)
    if rows is not None:
        (tmp / name).write_text("\n".join(rows) + "\n")
    return tmp


GOOD = """name: mini
description: test
tasks:
  - name: t
    type: classification
    data: {path: data.jsonl}
    prompt: "Text: {text}\\nAnswer:"
    labels:
      - {name: pos, description: good}
      - {name: neg, description: bad}
"""


def test_valid_minimal_suite_renders_prompt(tmp_path):
    _write_suite(tmp_path, GOOD, ['{"id": "a", "text": "up", "label": "pos"}',
                                  '{"id": "b", "text": "down", "label": "neg", "split": "train"}'])
    s = load_suite(str(tmp_path))
    t = s.tasks[0]
    assert [i.id for i in t.items] == ["a"] and [i.id for i in t.train_items] == ["b"]
    assert t.render_prompt(t.items[0]) == "Text: up\nAnswer:"
    assert t.items[0].choices == ("pos", "neg") and t.items[0].gold == 0


@pytest.mark.parametrize(("row", "line", "field", "fragment"), [
    ('{"id": "a", "text": "x", "label": "positive"}', 2, "label", "not one of the task's labels"),
    ('{"id": "a", "label": "pos"}', 2, "text", "missing"),
    ('{"id": "a", "text": "x", "label": "pos", "split": "dev"}', 2, "split", "test' or 'train"),
    ('{"id": "a", "text": "x", "label": "pos", "difficulty": "extreme"}', 2, "difficulty", "one of"),
    ('{"id": "z", "text": "x", "label": "pos"', 2, None, "invalid JSON"),
    ('["not", "an", "object"]', 2, None, "JSON object"),
    ('{"id": "z", "text": ["list"], "label": "pos"}', 2, "text", "must be text"),
])
def test_bad_items_name_file_line_field(tmp_path, row, line, field, fragment):
    _write_suite(tmp_path, GOOD, ['{"id": "ok", "text": "fine", "label": "neg"}', row])
    with pytest.raises(ValidationError) as ei:
        load_suite(str(tmp_path))
    e = ei.value
    assert e.file.endswith("data.jsonl") and e.line == line and e.field == field
    assert fragment in str(e)


def test_duplicate_id_names_both_lines(tmp_path):
    _write_suite(tmp_path, GOOD, ['{"id": "a", "text": "x", "label": "pos"}',
                                  '{"id": "a", "text": "y", "label": "neg"}'])
    with pytest.raises(ValidationError, match=r"line 2.*duplicate id \(first on line 1\)"):
        load_suite(str(tmp_path))


@pytest.mark.parametrize(("yaml_text", "field"), [
    (GOOD.replace("type: classification", "type: regression"), "type"),
    (GOOD.replace("    prompt:", "    promt:"), "promt"),
    (GOOD.replace("{text}", "{text.__class__}"), "prompt"),
    (GOOD.replace("name: mini", "name: Mini Suite!"), "name"),
    (GOOD + "    metrics: [accuracy, 'bad metric!']\n", "metrics"),
])
def test_bad_suite_yaml_names_field(tmp_path, yaml_text, field):
    _write_suite(tmp_path, yaml_text, ['{"id": "a", "text": "x", "label": "pos"}'])
    with pytest.raises(ValidationError) as ei:
        load_suite(str(tmp_path))
    assert ei.value.field == field and ei.value.file.endswith("suite.yaml") and ei.value.line


def test_yaml_syntax_error_has_line(tmp_path):
    _write_suite(tmp_path, GOOD.replace("tasks:", "tasks: [\n"), [])
    with pytest.raises(ValidationError) as ei:
        load_suite(str(tmp_path))
    assert ei.value.line is not None and "invalid YAML" in str(ei.value)


def test_yaml_object_construction_is_refused(tmp_path):
    _write_suite(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n", [])
    with pytest.raises(ValidationError):
        load_suite(str(tmp_path))


def test_multiple_choice_csv_and_bad_answer(tmp_path):
    yaml_text = """name: mc
tasks:
  - name: q
    type: multiple_choice
    data: {path: q.csv}
    prompt: "Q: {question}\\nA:"
"""
    (tmp_path / "suite.yaml").write_text(yaml_text)
    rows = [{"id": "1", "question": "2+2?", "choices": json.dumps(["3", "4"]), "answer": "1"},
            {"id": "2", "question": "3+3?", "choices": json.dumps(["6", "7"]), "answer": "5"}]
    import csv

    with open(tmp_path / "q.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(ValidationError) as ei:
        load_suite(str(tmp_path))
    assert ei.value.line == 3 and ei.value.field == "answer"


def test_data_path_cannot_escape_suite_folder(tmp_path):
    (tmp_path / "s").mkdir()
    _write_suite(tmp_path / "s", GOOD.replace("data.jsonl", "../outside.jsonl"))
    (tmp_path / "outside.jsonl").write_text('{"id": "a", "text": "x", "label": "pos"}\n')
    with pytest.raises(ValidationError, match="inside the suite folder"):
        load_suite(str(tmp_path / "s"))


def test_unknown_suite_suggests_close_match():
    with pytest.raises(FrugalError, match="finance"):
        load_suite("finanse")


def test_render_only_substitutes_fields():
    assert render("{a} {{literal}} {b}", {"a": 1, "b": "x"}) == "1 {literal} x"


def test_not_utf8_names_line(tmp_path):
    _write_suite(tmp_path, GOOD)
    (tmp_path / "data.jsonl").write_bytes(b'{"id": "a", "text": "x", "label": "pos"}\n{"id": "b", "text": "\xff"}\n')
    with pytest.raises(ValidationError) as ei:
        load_suite(str(tmp_path))
    assert ei.value.line == 2 and "UTF-8" in str(ei.value)


def test_csv_with_an_unclosed_quote_names_the_line_where_it_opens(tmp_path):
    (tmp_path / "suite.yaml").write_text(
        "name: s\ndescription: d\ntasks:\n  - name: t\n    type: classification\n    prompt: '{text}'\n"
        "    labels: [pos, neg]\n    data: {path: d.csv}\n")
    (tmp_path / "d.csv").write_text('id,text,label\n1,fine,pos\n2,"never closed,neg\n3,other,pos\n')
    with pytest.raises(ValidationError) as exc:
        load_suite(str(tmp_path))
    assert exc.value.line == 3 and "closing quote" in str(exc.value) and "d.csv" in str(exc.value)


def test_task_selectors_keep_named_tasks_and_leave_out_suites_with_none():
    from evaluator.suite import select_tasks

    suites = tuple(load_suite(s) for s in ("finance", "health", "climate"))
    assert select_tasks(suites, ()) == suites
    picked = select_tasks(suites, ("numeracy", "health/triage", "report-values"))
    assert [(s.name, [t.name for t in s.tasks]) for s in picked] == [
        ("finance", ["numeracy"]), ("health", ["triage"]), ("climate", ["report-values"])]
    assert [s.name for s in select_tasks(suites, ("finance/figures",))] == ["finance"]  # the others left out
    with pytest.raises(ValidationError) as e:
        select_tasks(suites, ("figures", "finance/triage"))
    assert e.value.field == "tasks" and "'finance/triage' names no task" in str(e.value)
    assert "health/triage" in str(e.value)  # the message lists the tasks there are


def test_a_bad_task_selector_in_a_config_names_the_file_line_and_field(tmp_path):
    from evaluator.config import load_config

    cfg = tmp_path / "eval.yaml"
    cfg.write_text("suites: [finance]\nmodels: [minilm-l6]\nvariants: [fp32]\ntasks: [numeracy, triage]\n")
    with pytest.raises(ValidationError) as e:
        load_config(cfg)
    assert (e.value.file, e.value.line, e.value.field) == (str(cfg), 4, "tasks")
    cfg.write_text("suites: [finance]\nmodels: [minilm-l6]\nvariants: [fp32]\ntasks: numeracy\n")
    assert load_config(cfg).tasks == ("numeracy",)
