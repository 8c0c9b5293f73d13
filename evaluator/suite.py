"""The Suite seam: a folder with suite.yaml + data files, validated against a small schema.

Tasks never see models. Every item ends up with the same shape (``choices`` + ``gold`` index + ``target``
text); the task type named by ``type:`` (evaluator/tasks/) validates its own fields of each row. Errors
name the file, the line and the field.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError, ValidationError, close_matches
from evaluator.tasks import TASK_TYPES as _TASK_TYPE_REGISTRY
from evaluator.tasks import get_task_type
from evaluator.tasks.base import Item, Label, Task, render, template_fields
from evaluator.tasks.prompting import CHAT_MODES
from evaluator.texts import is_text, jsonl_objects, split_jsonl_lines, unclosed_quote_line
from evaluator.yamlio import decode_text, key_line, line_of, load_yaml

TASK_TYPES = tuple(_TASK_TYPE_REGISTRY)
SPLITS = ("test", "train")
DIFFICULTIES = ("easy", "medium", "hard")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # use fullmatch
MAX_DATA_BYTES = int(os.environ.get("FRUGAL_MAX_DATA_BYTES", 50_000_000))
MAX_LINE_CHARS = 100_000
_REPO_DOMAINS = Path(__file__).resolve().parent.parent / "domains"
#: Built-in suites: the repo's domains/ in a checkout, else the copy shipped as package data.
BUILTIN_DIR = _REPO_DOMAINS if _REPO_DOMAINS.is_dir() else Path(__file__).resolve().parent / "data" / "domains"


@dataclass(frozen=True)
class Suite:
    """A named group of tasks from one folder."""

    name: str
    description: str
    path: str
    tasks: tuple[Task, ...] = field(default_factory=tuple)
    builtin: bool = False


# ------------------------------------------------------------------------------------------ loading
def select_tasks(suites: tuple[Suite, ...], selectors: tuple[str, ...]) -> tuple[Suite, ...]:
    """The suites with only the tasks ``selectors`` name ("TASK" or "SUITE/TASK"; none = every task).

    A suite none of whose tasks is named is left out; a selector that names no task of these suites is a
    ValidationError (field ``tasks``) listing the tasks there are.
    """
    if not selectors:
        return suites
    used: set[str] = set()
    out = []
    for s in suites:
        keep = []
        for t in s.tasks:
            hits = {sel for sel in selectors if sel in (t.name, f"{s.name}/{t.name}")}
            used |= hits
            if hits:
                keep.append(t)
        if keep:
            out.append(replace(s, tasks=tuple(keep)))
    unknown = [sel for sel in selectors if sel not in used]
    if unknown:
        have = ", ".join(f"{s.name}/{t.name}" for s in suites for t in s.tasks)
        raise ValidationError(f"{', '.join(map(repr, unknown))} names no task of the selected suites "
                              f"(they have: {have})", field="tasks")
    return tuple(out)


def builtin_suites() -> dict[str, Path]:
    """Name -> folder of every built-in suite."""
    if not BUILTIN_DIR.is_dir():
        return {}
    return {p.name: p for p in sorted(BUILTIN_DIR.iterdir()) if (p / "suite.yaml").is_file()}


def find_suite(name_or_path: str) -> Path:
    """A built-in suite name, a suite folder, or a suite.yaml path -> the suite.yaml path."""
    known = builtin_suites()
    if name_or_path in known and "/" not in name_or_path:  # a bare built-in name; './finance' means a folder
        return known[name_or_path] / "suite.yaml"
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p
    if p.is_dir() and (p / "suite.yaml").is_file():
        return p / "suite.yaml"
    if p.is_dir():
        raise ValidationError("folder has no suite.yaml", file=str(p))
    raise FrugalError(f"unknown suite {name_or_path!r}: not a built-in suite nor a path."
                      f"{close_matches(name_or_path, tuple(known))}")


_SUITE_FIELDS = {"name", "description", "version", "licence", "tasks"}
_TASK_FIELDS = {"name", "type", "description", "data", "prompt", "encoder_input", "labels", "metrics", "num_fewshot",
                "chat"}
MAX_FEWSHOT = 32


def load_suite(name_or_path: str) -> Suite:
    """Load and validate a suite; every error names file, line and field."""
    path = find_suite(name_or_path)
    doc = load_yaml(path)
    f = str(path)
    if not isinstance(doc, dict):
        raise ValidationError("expected a mapping (name, description, tasks)", file=f, line=1)
    _no_unknown(doc, _SUITE_FIELDS, f)
    name = doc.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ValidationError("required: lower-case letters, digits, '-' or '_'", file=f, line=key_line(doc, "name"),
                              field="name")
    description = _text_field(doc, "description", f)
    tasks_doc = doc.get("tasks")
    if not isinstance(tasks_doc, list) or not tasks_doc:
        raise ValidationError("required: a non-empty list of tasks", file=f, line=key_line(doc, "tasks"),
                              field="tasks")
    tasks, seen = [], set()
    for i, tdoc in enumerate(tasks_doc):
        task = _load_task(tdoc, name, path, i, key_line(doc, "tasks"))
        if task.name in seen:
            raise ValidationError(f"duplicate task name {task.name!r}", file=f, line=key_line(tdoc, "name"),
                                  field="name")
        seen.add(task.name)
        tasks.append(task)
    builtin = path.resolve().parent.parent == BUILTIN_DIR
    return Suite(name, description, str(path), tuple(tasks), builtin)


def _text_field(doc: dict, key: str, f: str, prefix: str = "") -> str:
    """An optional free-text field: a string (numbers are taken as text), else a ValidationError."""
    value = doc.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValidationError("must be text", file=f, line=key_line(doc, key), field=f"{prefix}{key}")
    return str(value)


def _no_unknown(doc: dict, allowed: set[str], f: str, prefix: str = "") -> None:
    for key in doc:
        if key not in allowed:
            raise ValidationError(f"unknown field.{close_matches(str(key), tuple(allowed))}", file=f,
                                  line=key_line(doc, key), field=f"{prefix}{key}")


def _load_task(t: Any, suite: str, path: Path, index: int = 0, tasks_line: int | None = None) -> Task:
    f = str(path)
    if not isinstance(t, dict):
        raise ValidationError("each task must be a mapping", file=f, line=tasks_line, field=f"tasks[{index}]")
    line = line_of(t)

    def err(msg: str, fld: str) -> ValidationError:
        key = fld.split(".")[0].split("[")[0]
        return ValidationError(msg, file=f, line=key_line(t, key, line), field=fld)

    ttype = t.get("type")
    kind = get_task_type(ttype) if isinstance(ttype, str) and ttype in TASK_TYPES else None
    _no_unknown(t, _TASK_FIELDS | (kind.extra_fields if kind else set()), f)
    name = t.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise err("required: lower-case letters, digits, '-' or '_'", "name")
    description = _text_field(t, "description", f)
    if kind is None:
        raise err(f"must be one of {', '.join(TASK_TYPES)} (got {ttype!r})", "type")
    prompt = t.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise err("required: the prompt template, e.g. 'Question: {question}\\nAnswer:'", "prompt")
    enc = t.get("encoder_input")
    if enc is not None and not isinstance(enc, str):
        raise err("must be a template string", "encoder_input")
    used: set[str] = set()
    for fld, tpl in (("prompt", prompt), ("encoder_input", enc)):
        if tpl is None:
            continue
        try:
            used.update(template_fields(tpl))
        except ValueError as exc:
            raise err(str(exc), fld) from None
        if not is_text(tpl):
            raise err("not valid Unicode text (an unpaired surrogate or a NUL character)", fld)
    labels: tuple[Label, ...] = ()
    if ttype == "classification":
        labels = _parse_labels(t.get("labels"), err)
    elif t.get("labels") is not None:
        raise err(f"{ttype} tasks take no 'labels' (multiple_choice: choices come with each item; generation: "
                  f"targets)", "labels")
    nshot = t.get("num_fewshot", 0)
    if not isinstance(nshot, int) or isinstance(nshot, bool) or not 0 <= nshot <= MAX_FEWSHOT:
        raise err(f"must be a whole number from 0 to {MAX_FEWSHOT} (examples from the train split)", "num_fewshot")
    chat = t.get("chat", kind.default_chat)
    if chat is True or chat is False:  # YAML reads on/off as booleans
        chat = "on" if chat else "off"
    if chat not in CHAT_MODES:
        raise err(f"must be one of {', '.join(CHAT_MODES)} (got {chat!r})", "chat")
    options = kind.parse_task(t, err)
    metrics = t.get("metrics", ["exact_match"] if ttype == "generation" else ["accuracy"])
    if isinstance(metrics, str):
        metrics = [metrics]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        raise err("must be a list of metric names, e.g. [accuracy, f1_macro]", "metrics")
    from evaluator.metrics import check_metric

    for m in metrics:
        try:
            check_metric(m)
        except (FrugalError, OSError, ValueError) as exc:
            raise err(str(exc), "metrics") from None
    data = t.get("data")
    if not isinstance(data, dict):
        raise err("required: {path: FILE.jsonl|FILE.csv} or {hf: {...}}", "data")
    shape = _Shape(ttype, labels, used)
    if "path" in data:
        items, source = _load_file(path.parent, data["path"], shape, err)
    elif "hf" in data:
        items, source = _load_hf(data["hf"], shape, err)
    else:
        raise err("needs 'path' (a local JSONL/CSV file) or 'hf' (a Hugging Face dataset)", "data")
    test = tuple(i for i in items if i.split == "test")
    train = tuple(i for i in items if i.split == "train")
    if not test:
        raise ValidationError("no test items (every item is split: train)", file=source, field="split")
    if nshot > len(train):
        raise err(f"num_fewshot {nshot} needs at least {nshot} items with split: train (the data has {len(train)})",
                  "num_fewshot")
    return Task(suite, name, ttype, description, prompt, enc, labels, tuple(metrics), test, train, source,
                num_fewshot=nshot, chat=chat, options=options)


def _parse_labels(raw: Any, err: Any) -> tuple[Label, ...]:
    if not isinstance(raw, list) or len(raw) < 2:
        raise err("classification needs a list of at least two labels", "labels")
    out, seen = [], set()
    for i, lab in enumerate(raw):
        if isinstance(lab, str):
            lab = {"name": lab}
        if not isinstance(lab, dict) or not isinstance(lab.get("name"), str) or not lab["name"].strip():
            raise err("each label needs a 'name'", f"labels[{i}].name")
        if lab["name"] in seen:
            raise err(f"duplicate label {lab['name']!r}", f"labels[{i}].name")
        seen.add(lab["name"])
        for k in ("description", "text"):
            if lab.get(k) is not None and not isinstance(lab[k], str):
                raise err("must be a string", f"labels[{i}].{k}")
        out.append(Label(lab["name"], lab.get("description") or lab["name"], lab.get("text") or lab["name"]))
    return tuple(out)


@dataclass(frozen=True)
class _Shape:
    type: str
    labels: tuple[Label, ...]
    fields: set[str]


def _load_file(base: Path, rel: Any, shape: _Shape, err: Any) -> tuple[list[Item], str]:
    if not isinstance(rel, str) or not rel.strip():
        raise err("must be a file name", "data.path")
    if "\x00" in rel:
        raise err("a file name cannot contain a NUL character", "data.path")
    if Path(rel).suffix.lower() not in (".jsonl", ".csv"):
        raise err("data file must end in .jsonl or .csv", "data.path")
    try:
        p = (base / rel).resolve()
        if base.resolve() not in p.parents:
            raise err("data files must lie inside the suite folder", "data.path")
        if not p.is_file():
            raise err(f"data file not found: {p}", "data.path")
        if p.stat().st_size > MAX_DATA_BYTES:
            raise ValidationError(f"file is larger than {MAX_DATA_BYTES} bytes (FRUGAL_MAX_DATA_BYTES)", file=str(p))
        raw = p.read_bytes()
    except OSError as exc:
        raise err(f"cannot read the data file: {exc.strerror or exc}", "data.path") from None
    text = decode_text(raw, str(p))
    rows = _jsonl_rows(text, str(p)) if p.suffix.lower() == ".jsonl" else _csv_rows(text, str(p))
    if not rows:
        raise ValidationError("no items", file=str(p))
    return _items(rows, shape, str(p)), str(p)


def _jsonl_rows(text: str, f: str) -> list[tuple[int, dict]]:
    return jsonl_objects(text, f, ValidationError, MAX_LINE_CHARS)


def _csv_rows(text: str, f: str) -> list[tuple[int, dict]]:
    start = unclosed_quote_line(text)
    if start is not None:  # the csv module would read the rest of the file as one value, silently
        raise ValidationError("invalid CSV: a quoted field starts here and its closing quote (\") is missing, so "
                              "everything after it would be read as one value", file=f, line=start)
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        for row in reader:
            n = reader.line_num
            if None in row:
                raise ValidationError("more values than columns", file=f, line=n)
            obj: dict[str, Any] = dict(row)
            if "choices" in obj and isinstance(obj["choices"], str):
                try:
                    obj["choices"] = json.loads(obj["choices"])
                except (ValueError, RecursionError):
                    raise ValidationError("choices must be a JSON list, e.g. [\"a\", \"b\"]", file=f, line=n,
                                          field="choices") from None
            if isinstance(obj.get("targets"), str) and obj["targets"].lstrip().startswith("["):
                try:
                    obj["targets"] = json.loads(obj["targets"])
                except (ValueError, RecursionError):
                    raise ValidationError("targets must be a JSON list, e.g. [\"5 ml\", \"5 millilitres\"]", file=f,
                                          line=n, field="targets") from None
            answer = obj.get("answer")
            if isinstance(answer, str) and re.fullmatch(r"-?[0-9]{1,9}", answer.strip()):
                obj["answer"] = int(answer.strip())
            rows.append((n, obj))
    except csv.Error as exc:
        raise ValidationError(f"invalid CSV: {exc}", file=f, line=reader.reader.line_num) from None
    return rows


def _items(rows: list[tuple[int, dict]], shape: _Shape, f: str) -> list[Item]:
    items, seen = [], {}
    for n, obj in rows:
        def bad(msg: str, fld: str, n: int = n) -> ValidationError:
            return ValidationError(msg, file=f, line=n, field=fld)

        iid = obj.get("id")
        if not isinstance(iid, str | int) or isinstance(iid, bool) or str(iid).strip() == "":
            raise bad("required: a unique id (string)", "id")
        iid = str(iid)
        if not is_text(iid):
            raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", "id")
        if iid in seen:
            raise bad(f"duplicate id (first on line {seen[iid]})", "id")
        seen[iid] = n
        split = obj.get("split", "test") or "test"
        if split not in SPLITS:
            raise bad(f"must be 'test' or 'train' (got {split!r})", "split")
        diff = obj.get("difficulty")
        if diff is not None and diff not in DIFFICULTIES:
            raise bad(f"must be one of {', '.join(DIFFICULTIES)}", "difficulty")
        for fld in shape.fields:
            if fld not in obj:
                raise bad("missing (the prompt template uses it)", fld)
            if not isinstance(obj[fld], str | int | float) or isinstance(obj[fld], bool):
                raise bad("must be text", fld)
            if isinstance(obj[fld], str) and not is_text(obj[fld]):
                raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", fld)
        choices, gold, target = get_task_type(shape.type).parse_item(obj, shape.labels, bad)
        targets: tuple[str, ...] = ()
        if isinstance(target, tuple):  # several acceptable answers (generation): the first is the target text
            targets, target = target, target[0]
        fields = {k: v for k, v in obj.items() if k in shape.fields or k in ("question", "text")}
        items.append(Item(iid, fields, choices, gold, split, diff, n, target, targets))
    return items


def _load_hf(spec: Any, shape: _Shape, err: Any) -> tuple[list[Item], str]:
    if not isinstance(spec, dict) or not isinstance(spec.get("path"), str):
        raise err("needs at least 'path' (the dataset id)", "data.hf.path")
    try:
        import datasets
    except ImportError:  # pragma: no cover - datasets ships with evaluate
        raise err("the 'datasets' package is needed for Hugging Face data", "data.hf") from None
    columns = spec.get("columns") or {}
    rows: list[tuple[int, dict]] = []
    for split_name, our_split in ((spec.get("split", "test"), "test"), (spec.get("train_split"), "train")):
        if not split_name:
            continue
        try:
            ds = datasets.load_dataset(spec["path"], spec.get("config"), split=split_name)
        except Exception as exc:  # noqa: BLE001 - datasets raises many types
            raise err(f"could not load {spec['path']} split {split_name}: {exc}", "data.hf") from None
        names = ds.features.get(columns.get("label", "label"))
        for i, row in enumerate(ds):
            obj = {ours: row[theirs] for ours, theirs in columns.items()}
            obj.setdefault("id", f"{split_name}-{i}")
            obj["split"] = our_split
            if shape.type == "classification" and isinstance(obj.get("label"), int) and hasattr(names, "names"):
                obj["label"] = names.names[obj["label"]]
            rows.append((i + 1, obj))
    return _items(rows, shape, f"hf:{spec['path']}"), f"hf:{spec['path']}"


#: Task, Item, Label and the template functions live with the task types (evaluator/tasks/base.py); suites
#: load them from files. Re-exported here for callers that read suites.
__all__ = ["BUILTIN_DIR", "MAX_LINE_CHARS", "TASK_TYPES", "Item", "Label", "Suite", "Task", "builtin_suites",
           "find_suite", "is_text", "load_suite", "render", "split_jsonl_lines", "template_fields"]
