"""Safe handling of uploaded suites: a zipped suite folder, or a CSV/JSONL table plus a column mapping.

Zip archives are checked before anything is written (entry count, names, symlinks, declared sizes and
compression ratios) and again while streaming (actual bytes never exceed the declared size nor the
total cap). Everything is written into a temp folder beside the destination, validated with
:func:`evaluator.suite.load_suite` (YAML through :mod:`evaluator.yamlio`, the safe loader), and only
then renamed into place. Errors are :class:`UploadError` with a message a person can act on.
No Streamlit here.
"""

from __future__ import annotations

import csv
import io
import json
import lzma
import math
import os
import re
import shutil
import stat
import struct
import uuid
import zipfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from evaluator.errors import FrugalError, ValidationError
from evaluator.texts import is_text as _is_text
from evaluator.texts import jsonl_objects, unclosed_quote_line

MAX_BYTES = 50_000_000
#: Environment variable overriding MAX_BYTES, in MB (the app's own limit is Streamlit's server.maxUploadSize,
#: settable with STREAMLIT_SERVER_MAX_UPLOAD_SIZE; the lower of the two applies).
ENV_MAX_MB = "FRUGAL_MAX_UPLOAD_MB"
MAX_FILES = 200
#: Uncompressed / compressed size above which an entry (or the archive) looks like a zip bomb.
MAX_RATIO = 200
#: Entries smaller than this are not held to the ratio cap (tiny files compress oddly).
RATIO_MIN_BYTES = 1_000_000
#: Longest name of one path component (bytes, as most file systems allow) and of a whole entry name.
MAX_NAME_BYTES = 255
MAX_PATH_CHARS = 1024
_SKIP = ("__MACOSX/", ".DS_Store", "Thumbs.db", "desktop.ini")
_CHUNK = 1 << 16
#: What a damaged archive can raise while an entry is read (beyond UploadError).
_DAMAGED = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError, RuntimeError, ValueError,
            struct.error, zipfile.LargeZipFile)


class UploadError(ValidationError):
    """An upload was refused; the message says why (and, for a table or an archive member, where)."""


def _size(n: int) -> str:
    return f"{n / 1e6:g} MB" if n >= 1_000_000 else f"{n / 1e3:g} kB"


def _slug(text: str, fallback: str = "uploaded") -> str:
    s = re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_")[:64]
    return s if s and s[0].isalnum() else fallback


def _check_name(name: str) -> PurePosixPath:
    if not name or "\x00" in name or "\\" in name:
        raise UploadError(f"refused: unsafe file name in the archive: {name!r}")
    p = PurePosixPath(name)
    if p.is_absolute() or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UploadError(f"refused: absolute path in the archive: {name!r}")
    if ".." in p.parts:
        raise UploadError(f"refused: path traversal ('..') in the archive: {name!r}")
    if not p.parts:  # ".", "./": names nothing
        raise UploadError(f"refused: unsafe file name in the archive: {name!r}")
    if len(name) > MAX_PATH_CHARS or any(len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
                                         for part in p.parts):
        raise UploadError(f"refused: file name too long in the archive: {name[:80]!r}...")
    return p


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _is_special(info: zipfile.ZipInfo) -> bool:
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0 when the archiver recorded no file type
    return bool(kind) and kind not in (stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


def _builtin_names() -> set[str]:
    from evaluator.suite import builtin_suites

    return set(builtin_suites())


def _validate_and_place(tmp: Path, dest_root: Path) -> Path:
    """Load the suite in ``tmp`` (raises with file/line/field), then move it to dest_root/<name>."""
    from evaluator.suite import load_suite

    try:
        suite = load_suite(str(tmp))
    except FrugalError as exc:
        msg = str(exc).replace(str(tmp) + "/", "").replace(str(tmp), "(upload)")
        err = UploadError(f"the suite does not validate: {msg}")
        if isinstance(exc, ValidationError):  # keep where it is, relative to the upload
            err.file = exc.file.replace(str(tmp) + "/", "") if exc.file else None
            err.line, err.field, err.reason = exc.line, exc.field, exc.reason
        raise err from None
    if suite.name in _builtin_names():
        raise UploadError(f"suite name {suite.name!r} is taken by a built-in suite; change 'name' in suite.yaml")
    final = dest_root / suite.name
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return final


def max_upload_bytes() -> int:
    """The upload size cap: ``$FRUGAL_MAX_UPLOAD_MB`` when set (a positive number), else MAX_BYTES."""
    raw = os.environ.get(ENV_MAX_MB, "").strip()
    if not raw:
        return MAX_BYTES
    try:
        mb = float(raw)
    except ValueError:
        mb = float("nan")
    if not math.isfinite(mb) or mb <= 0:
        raise ValidationError(f"must be a positive number of MB, got {raw!r}", file="environment", field=ENV_MAX_MB)
    return int(mb * 1_000_000)


def extract_suite_zip(data: bytes, dest_root: Path, max_bytes: int | None = None, max_files: int = MAX_FILES,
                      max_ratio: float = MAX_RATIO) -> Path:
    """Unpack a zipped suite folder under ``dest_root/<suite name>/`` safely; return that folder.

    The archive holds ``suite.yaml`` and its data files, at the top or inside one folder.
    Refuses path traversal, absolute paths, symlinks and special files, more than ``max_files``
    files, more than ``max_bytes`` uncompressed, and suspicious compression ratios.
    """
    max_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    if len(data) > max_bytes:
        raise UploadError(f"refused: the archive is larger than {_size(max_bytes)}")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (*_DAMAGED, OSError) as exc:
        raise UploadError(f"not a readable zip archive ({exc})") from None
    files: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    total = 0
    for info in infos:
        if any(s in info.filename for s in _SKIP):
            continue
        p = _check_name(info.filename)
        if _is_symlink(info):
            raise UploadError(f"refused: the archive contains a symbolic link: {info.filename!r}")
        if _is_special(info):
            raise UploadError(f"refused: the archive contains a special file: {info.filename!r}")
        if info.is_dir():
            continue
        if info.flag_bits & 0x1:
            raise UploadError(f"refused: encrypted entry {info.filename!r}")
        files.append((info, p))
        if len(files) > max_files:
            raise UploadError(f"refused: more than {max_files} files in the archive")
        total += info.file_size
        if total > max_bytes:
            raise UploadError(f"refused: more than {_size(max_bytes)} once unpacked")
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > max_ratio * max(1, info.compress_size):
            raise UploadError(f"refused: {info.filename!r} expands {info.file_size / max(1, info.compress_size):.0f}x "
                              "(looks like a zip bomb)")
    if total >= RATIO_MIN_BYTES and total > max_ratio * max(1, len(data)):
        raise UploadError("refused: the archive expands too much (looks like a zip bomb)")
    if not files:
        raise UploadError("the archive is empty")
    names = {str(p) for _, p in files}
    if "suite.yaml" in names:
        prefix = ""
    else:
        tops = {p.parts[0] for _, p in files}
        if len(tops) == 1 and f"{next(iter(tops))}/suite.yaml" in names:
            prefix = next(iter(tops)) + "/"
        else:
            raise UploadError("no suite.yaml at the top of the archive (or inside its single top folder)")
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = dest_root / f".tmp-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        _unpack(zf, files, prefix, tmp, max_bytes)
        return _validate_and_place(tmp, dest_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def suite_from_files(files: Iterable[tuple[str, bytes]], dest_root: Path, max_bytes: int | None = None,
                     max_files: int = MAX_FILES) -> Path:
    """Place an uploaded suite *folder* (``(relative path, bytes)`` per file, as a browser sends a directory).

    The files go through exactly the checks of :func:`extract_suite_zip` (names, '..' and absolute paths,
    count, total size, suite validation): they are packed into an in-memory zip first.
    """
    max_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    buf = io.BytesIO()
    total = n = 0
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files:
            n += 1
            total += len(data)
            if n > max_files:
                raise UploadError(f"refused: more than {max_files} files in the folder")
            if total > max_bytes:
                raise UploadError(f"refused: the folder holds more than {_size(max_bytes)}")
            _check_name(name)  # before zipfile normalises it: '..', absolute paths, NUL bytes
            zf.writestr(zipfile.ZipInfo(name), data)
    if not n:
        raise UploadError("the folder is empty")
    # the zip adds its headers: allow for them so a folder just under the cap is not refused
    return extract_suite_zip(buf.getvalue(), dest_root, max_bytes=max_bytes + 512 * (n + 1), max_files=max_files)


def _unpack(zf: zipfile.ZipFile, files: list[tuple[zipfile.ZipInfo, PurePosixPath]], prefix: str, tmp: Path,
            max_bytes: int) -> None:
    """Stream the entries into ``tmp``; a damaged entry or one that cannot be written is an UploadError."""
    written = 0
    for info, p in files:
        rel = str(p)[len(prefix):] if str(p).startswith(prefix) else None
        if not rel:
            continue
        target = (tmp / rel).resolve()
        if tmp.resolve() not in target.parents:
            raise UploadError(f"refused: {info.filename!r} would land outside the suite folder")
        size = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as out:
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    written += len(chunk)
                    if size > info.file_size:
                        raise UploadError(f"refused: {info.filename!r} is larger than its header says")
                    if written > max_bytes:
                        raise UploadError(f"refused: more than {_size(max_bytes)} once unpacked")
                    out.write(chunk)
        except _DAMAGED as exc:
            raise UploadError(f"the archive is damaged (entry {info.filename!r}: {type(exc).__name__}: "
                              f"{exc})") from None
        except OSError as exc:  # e.g. a file and a folder of the same name
            raise UploadError(f"refused: cannot unpack {info.filename!r} ({exc.strerror or exc})") from None


# --------------------------------------------------------------------------------------- tables
def read_table(data: bytes, filename: str, max_bytes: int | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and rows of an uploaded CSV or JSONL file (UTF-8)."""
    columns, rows, _lines = _read_rows(data, filename, max_bytes)
    return columns, rows


def _read_rows(data: bytes, filename: str, max_bytes: int | None = None) -> tuple[list[str], list[dict[str, Any]],
                                                                               list[int]]:
    """Columns, rows and the line each row ends on; errors name the file and line."""
    from evaluator.yamlio import decode_text

    max_bytes = max_upload_bytes() if max_bytes is None else max_bytes
    if len(data) > max_bytes:
        raise UploadError(f"refused: the file is larger than {_size(max_bytes)}", file=filename)
    try:
        text = decode_text(data, filename)
    except ValidationError as exc:
        raise UploadError(exc.reason, file=filename, line=exc.line) from None
    suffix = Path(filename).suffix.lower()
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    if suffix in (".jsonl", ".ndjson", ".json"):
        for n, obj in jsonl_objects(text, filename, UploadError):
            rows.append(obj)
            lines.append(n)
    elif suffix in (".csv", ".tsv"):
        delimiter = "\t" if suffix == ".tsv" else ","
        start = unclosed_quote_line(text, delimiter)
        if start is not None:
            raise UploadError("invalid CSV: a quoted field starts here and its closing quote (\") is missing, so "
                              "everything after it would be read as one value", file=filename, line=start)
        reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
        try:
            for row in reader:
                if None in row:
                    raise UploadError("more values than columns", file=filename, line=reader.line_num)
                rows.append(dict(row))
                lines.append(reader.line_num)
        except csv.Error as exc:
            raise UploadError(f"invalid CSV ({exc})", file=filename, line=reader.reader.line_num) from None
    else:
        raise UploadError(f"{filename}: expected a .csv or .jsonl file")
    if not rows:
        raise UploadError("no rows", file=filename)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    return columns, rows, lines




def _choices_of(value: Any, bad: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, str):
        v = value.strip()
        if v.startswith("["):
            try:
                parsed = json.loads(v)
            except (ValueError, RecursionError):
                raise bad("choices look like JSON but do not parse") from None
            if isinstance(parsed, list):
                return [str(x) for x in parsed]
        return [c.strip() for c in v.split("|")]
    raise bad("choices must be a list, a JSON list or 'a|b|c'")


def _answer_index(ans: Any, choices: list[str], answer_is: str, bad: Any) -> int:
    """Return the gold index from an answer cell: a 0-based index or the correct choice's text.

    ``auto``: a JSON number is an index; a string equal to a choice is that choice; a digit string is an index.
    """
    text = str(ans).strip() if isinstance(ans, str | int) else ""
    if answer_is in ("auto", "text") and isinstance(ans, str) and text in choices:
        return choices.index(text)
    if answer_is in ("auto", "index"):
        if isinstance(ans, int) and not isinstance(ans, bool):
            idx = ans
        elif isinstance(ans, str) and re.fullmatch(r"-?[0-9]{1,9}", text):
            idx = int(text)
        else:
            idx = None
        if idx is not None and 0 <= idx < len(choices):
            return idx
    want = {"auto": "a 0-based index nor one of the choices", "index": "a 0-based index of the choices",
            "text": "the text of one of the choices"}[answer_is]
    shown = repr(ans) if len(repr(ans)) <= 80 else repr(ans)[:77] + "..."
    raise bad(f"answer {shown} is not {want}")


def _clean(s: str) -> str:
    """Text safe to write as UTF-8 (unpaired surrogates and NULs replaced)."""
    return s.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


def suite_from_table(data: bytes, filename: str, mapping: dict[str, Any], task_name: str,
                     labels: Sequence[str] | None, dest_root: Path, suite_name: str | None = None,
                     description: str = "") -> Path:
    """Build a suite folder (suite.yaml + data.jsonl) from a table and a column mapping.

    ``mapping``: ``text`` (input column, required), ``id`` (optional; row numbers otherwise),
    ``split`` (optional). Classification (``labels`` given): ``label`` = column holding one of
    ``labels``. Multiple choice (``labels`` is None): ``choices`` = one column holding a JSON list or
    'a|b|c', or a list of columns; ``answer`` = column with the 0-based index or the correct choice's text;
    ``answer_is`` = "auto" (default), "index" or "text" settles answers like "2" among numeric choices.
    Errors name the file, the line, the column (field) and the row.
    """
    from evaluator.suite import MAX_LINE_CHARS

    columns, rows, lines = _read_rows(data, filename)

    def col(key: str, required: bool = True) -> Any:
        c = mapping.get(key)
        if not c:
            if required:
                raise UploadError(f"column mapping: choose the column for '{key}'", file=filename, field=key)
            return None
        many = key == "choices" and isinstance(c, list | tuple)
        for one in c if many else [c]:
            if not isinstance(one, str) or one not in columns:
                raise UploadError(f"column mapping: {key} -> {one!r} is not a column of {filename} "
                                  f"(columns: {', '.join(columns)})", file=filename, field=key)
        return c

    text_c, id_c, split_c = col("text"), col("id", False), col("split", False)
    mc = labels is None
    label_c = None if mc else col("label")
    choices_c, answer_c = (col("choices"), col("answer")) if mc else (None, None)
    answer_is = mapping.get("answer_is", "auto")
    if answer_is not in ("auto", "index", "text"):
        raise UploadError("column mapping: answer_is must be auto, index or text", file=filename,
                          field="answer_is")
    if not mc:
        labels = [str(x).strip() for x in labels]
        if len(labels) < 2 or len(set(labels)) != len(labels) or not all(lab and _is_text(lab) for lab in labels):
            raise UploadError("classification needs at least two distinct, non-empty labels", file=filename,
                              field="labels")
    task = _slug(task_name if isinstance(task_name, str) else "", "task")
    name = _slug(suite_name if isinstance(suite_name, str) and suite_name else Path(filename).stem)
    field = "question" if mc else "text"
    out_rows: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for n, (row, line) in enumerate(zip(rows, lines, strict=True), 1):
        def bad(msg: str, column: Any, line: int = line, n: int = n) -> UploadError:
            return UploadError(msg, file=filename, line=line, field=None if column is None else str(column),
                               row=n)

        text = row.get(text_c)
        if text is None or str(text).strip() == "":
            raise bad(f"empty '{text_c}'", text_c)
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise bad("must be text", text_c)
        if id_c:
            raw_id = row.get(id_c)
            if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or not str(raw_id).strip():
                raise bad(f"empty or not a text id in column '{id_c}'", id_c)
            iid = str(raw_id).strip()
        else:
            iid = f"{task}-{n:05d}"
        if iid in seen:
            raise bad(f"duplicate id {iid!r} (first in row {seen[iid]})", id_c)
        seen[iid] = n
        item: dict[str, Any] = {"id": iid, field: str(text)}
        if split_c and row.get(split_c):
            split = str(row[split_c]).strip().lower()
            if split not in ("test", "train"):
                raise bad(f"split must be 'test' or 'train' (got {split[:40]!r})", split_c)
            item["split"] = split
        if mc:
            if isinstance(choices_c, list | tuple):
                choices = [str(row.get(c, "")).strip() for c in choices_c if str(row.get(c, "")).strip()]
                where_c = ",".join(choices_c)
            else:
                where_c = choices_c
                choices = _choices_of(row.get(choices_c), lambda msg, c=where_c: bad(msg, c))
            if not 2 <= len(choices) <= 10 or not all(c.strip() for c in choices):
                raise bad(f"needs 2-10 non-empty choices (got {len(choices)})", where_c)
            if len(set(choices)) != len(choices):
                raise bad("choices must be distinct", where_c)
            gold = _answer_index(row.get(answer_c), choices, answer_is, lambda msg: bad(msg, answer_c))
            item["choices"], item["answer"] = choices, gold
        else:
            lab = str(row.get(label_c, "")).strip()
            if lab not in labels:
                shown = lab if len(lab) <= 60 else lab[:57] + "..."
                raise bad(f"label {shown!r} is not one of {', '.join(labels)}", label_c)
            item["label"] = lab
        for key, value in item.items():
            values = value if isinstance(value, list) else [value]
            if not all(_is_text(v) for v in values if isinstance(v, str)):
                column = {"id": id_c, field: text_c, "split": split_c, "label": label_c, "choices": choices_c}[key]
                raise bad("not valid Unicode text (an unpaired surrogate or a NUL character)", column)
        if len(json.dumps(item, ensure_ascii=False)) > MAX_LINE_CHARS:
            raise bad(f"row longer than {MAX_LINE_CHARS} characters", text_c)
        out_rows.append(item)
    source = _clean(Path(filename).name)
    if mc:
        tdoc: dict[str, Any] = {"name": task, "type": "multiple_choice",
                                "description": f"Uploaded from {source}",
                                "data": {"path": "data.jsonl"}, "prompt": "Question: {question}\nAnswer:",
                                "metrics": ["accuracy"]}
    else:
        tdoc = {"name": task, "type": "classification", "description": f"Uploaded from {source}",
                "data": {"path": "data.jsonl"}, "prompt": "Text: {text}\nAnswer:", "encoder_input": "{text}",
                "labels": [{"name": lab, "description": lab, "text": lab} for lab in labels],
                "metrics": ["accuracy", "f1_macro"] if len(labels) > 2 else ["accuracy"]}
    desc = _clean(description) if isinstance(description, str) and description else f"Uploaded from {source}"
    doc = {"name": name, "description": desc, "version": 1, "tasks": [tdoc]}
    dest_root = Path(dest_root)
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = dest_root / f".tmp-{uuid.uuid4().hex[:10]}"
    tmp.mkdir()
    try:
        (tmp / "suite.yaml").write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        with open(tmp / "data.jsonl", "w", encoding="utf-8") as fh:
            for r in out_rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
        return _validate_and_place(tmp, dest_root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def uploads_dir() -> Path:
    """FRUGAL_HOME/uploads: where uploaded suites live."""
    from evaluator.models import frugal_home

    return frugal_home() / "uploads"


def list_uploaded(root: Path | None = None) -> dict[str, Path]:
    """Name -> folder of every uploaded suite."""
    root = root or uploads_dir()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if not p.name.startswith(".") and (p / "suite.yaml").is_file()}


__all__ = ["MAX_BYTES", "MAX_FILES", "UploadError", "extract_suite_zip", "list_uploaded", "read_table",
           "suite_from_files", "suite_from_table", "uploads_dir"]
