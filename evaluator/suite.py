"""The Suite seam: a folder with suite.yaml + data files, validated against a small schema.

Tasks never see models. Every item ends up with the same shape (``choices`` + ``gold`` index), so
scorers treat classification and multiple choice alike. Errors name the file, the line and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.errors import FrugalError, ValidationError, close_matches
from evaluator.yamlio import decode_text, key_line, line_of, load_yaml

TASK_TYPES = ("classification", "multiple_choice")
SPLITS = ("test", "train")
DIFFICULTIES = ("easy", "medium", "hard")
NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # use fullmatch
MAX_DATA_BYTES = int(os.environ.get("FRUGAL_MAX_DATA_BYTES", 50_000_000))
MAX_LINE_CHARS = 100_000
_REPO_DOMAINS = Path(__file__).resolve().parent.parent / "domains"
#: Built-in suites: the repo's domains/ in a checkout, else the copy shipped as package data.
BUILTIN_DIR = _REPO_DOMAINS if _REPO_DOMAINS.is_dir() else Path(__file__).resolve().parent / "data" / "domains"


@dataclass(frozen=True)
class Label:
    """A class of a classification task."""

    name: str
    description: str
    text: str


@dataclass(frozen=True)
class Item:
    """One scored example: the fields the templates use, the choices and the gold index."""

    id: str
    fields: Mapping[str, Any]
    choices: tuple[str, ...]
    gold: int
    split: str = "test"
    difficulty: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Task:
    """A named task: items plus how to present and score them."""

    suite: str
    name: str
    type: str
    description: str
    prompt: str
    encoder_input: str | None
    labels: tuple[Label, ...]
    metrics: tuple[str, ...]
    items: tuple[Item, ...]
    train_items: tuple[Item, ...] = ()
    source: str = ""

    def render_prompt(self, item: Item) -> str:
        """The prompt text for a causal LM."""
        return render(self.prompt, item.fields)

    def render_encoder_input(self, item: Item) -> str:
        """The text an encoder embeds."""
        return render(self.encoder_input or self.prompt, item.fields)

    def choice_descriptions(self, item: Item) -> tuple[str, ...]:
        """What an encoder compares the input with: label descriptions, or the item's choices."""
        if self.type == "classification":
            return tuple(lab.description for lab in self.labels)
        return item.choices

    def fingerprint(self, limit: int | None = None) -> str:
        """Changes whenever anything that affects scores changes (templates, labels, items)."""
        h = hashlib.sha256()
        payload = {"type": self.type, "prompt": self.prompt, "enc": self.encoder_input,
                   "labels": [(lab.name, lab.description, lab.text) for lab in self.labels],
                   "metrics": self.metrics}
        h.update(json.dumps(payload, sort_keys=True).encode())
        for it in (*self.select(limit), *self.train_items):
            h.update(json.dumps([it.id, dict(it.fields), it.choices, it.gold, it.split],
                                sort_keys=True, default=str).encode())
        return h.hexdigest()[:20]

    def select(self, limit: int | None) -> tuple[Item, ...]:
        """The first ``limit`` test items, in file order (fixed, reproducible)."""
        return self.items if limit is None else self.items[:limit]


@dataclass(frozen=True)
class Suite:
    """A named group of tasks from one folder."""

    name: str
    description: str
    path: str
    tasks: tuple[Task, ...] = field(default_factory=tuple)
    builtin: bool = False


def render(template: str, fields: Mapping[str, Any]) -> str:
    """Replace ``{name}`` with the item's field; ``{{``/``}}`` are literal braces; nothing else runs."""
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if template.startswith("{{", i) or template.startswith("}}", i):
            out.append(ch)
            i += 2
        elif ch == "{":
            j = template.index("}", i)
            out.append(str(fields[template[i + 1:j]]))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def template_fields(template: str) -> list[str]:
    """Field names a template uses, read exactly as :func:`render` reads them.

    Raises ValueError on anything but plain names and on a ``{`` that is never closed.
    """
    names, i = [], 0
    while i < len(template):
        if template.startswith("{{", i) or template.startswith("}}", i):
            i += 2
        elif template[i] == "{":
            j = template.find("}", i)
            if j < 0:
                raise ValueError(f"'{{' at character {i + 1} is never closed; write '{{{{' for a literal brace")
            name = template[i + 1:j]
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"'{{{name}}}' is not a plain field name")
            names.append(name)
            i = j + 1
        else:
            i += 1
    return names


# ------------------------------------------------------------------------------------------ loading
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
_TASK_FIELDS = {"name", "type", "description", "data", "prompt", "encoder_input", "labels", "metrics"}


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

    _no_unknown(t, _TASK_FIELDS, f)
    name = t.get("name")
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise err("required: lower-case letters, digits, '-' or '_'", "name")
    description = _text_field(t, "description", f)
    ttype = t.get("type")
    if ttype not in TASK_TYPES:
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
        raise err("multiple_choice tasks take their choices from each item, not 'labels'", "labels")
    metrics = t.get("metrics", ["accuracy"])
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
    return Task(suite, name, ttype, description, prompt, enc, labels, tuple(metrics), test, train, source)


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


def split_jsonl_lines(text: str) -> list[str]:
    """JSONL lines: split on newline only (a JSON string may hold U+2028 or U+0085 raw), minus a trailing CR."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _jsonl_rows(text: str, f: str) -> list[tuple[int, dict]]:
    rows = []
    for n, line in enumerate(split_jsonl_lines(text), 1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            raise ValidationError(f"line longer than {MAX_LINE_CHARS} characters", file=f, line=n)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=f, line=n) from None
        except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
            msg = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise ValidationError(f"invalid JSON: {msg}", file=f, line=n) from None
        if not isinstance(obj, dict):
            raise ValidationError("each line must be a JSON object", file=f, line=n)
        rows.append((n, obj))
    return rows


def _csv_rows(text: str, f: str) -> list[tuple[int, dict]]:
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
            answer = obj.get("answer")
            if isinstance(answer, str) and re.fullmatch(r"-?[0-9]{1,9}", answer.strip()):
                obj["answer"] = int(answer.strip())
            rows.append((n, obj))
    except csv.Error as exc:
        raise ValidationError(f"invalid CSV: {exc}", file=f, line=reader.reader.line_num) from None
    return rows


def _items(rows: list[tuple[int, dict]], shape: _Shape, f: str) -> list[Item]:
    items, seen = [], {}
    label_index = {lab.name: i for i, lab in enumerate(shape.labels)}
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
        if shape.type == "classification":
            label = obj.get("label")
            if not isinstance(label, str) or label not in label_index:
                names = tuple(label_index)
                hint = close_matches(str(label), names) if isinstance(label, str) else f" Known: {', '.join(names)}."
                raise bad(f"{label!r} is not one of the task's labels.{hint}", "label")
            choices = tuple(lab.text for lab in shape.labels)
            gold = label_index[label]
        else:
            choices = obj.get("choices")
            if not isinstance(choices, list) or not 2 <= len(choices) <= 10 or not all(
                    isinstance(c, str) and c.strip() for c in choices):
                raise bad("must be a list of 2-10 non-empty strings", "choices")
            if not all(is_text(c) for c in choices):
                raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", "choices")
            if len(set(choices)) != len(choices):
                raise bad("choices must be distinct", "choices")
            gold = obj.get("answer")
            if not isinstance(gold, int) or isinstance(gold, bool) or not 0 <= gold < len(choices):
                raise bad(f"must be the 0-based index of the correct choice (0-{len(choices) - 1})", "answer")
            choices = tuple(choices)
        fields = {k: v for k, v in obj.items() if k in shape.fields or k in ("question", "text")}
        items.append(Item(iid, fields, choices, gold, split, diff, n))
    return items


def is_text(s: str) -> bool:
    """True when ``s`` can be stored and tokenised: encodable as UTF-8, no NUL characters."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in s


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
