"""Safe YAML loading that remembers line numbers, so errors can name the line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evaluator.errors import ValidationError


class LineDict(dict):
    """A dict from YAML that knows the line (1-based) it started on."""

    line: int = 0


class _Loader(yaml.SafeLoader):
    """SafeLoader (no object construction) whose mappings are LineDicts."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    out = LineDict()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise ValidationError("mapping key is not a plain value", line=key_node.start_mark.line + 1) from None
        out[key] = loader.construct_object(value_node, deep=True)
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file safely; syntax errors become ValidationErrors naming file and line."""
    path = Path(path)
    try:
        if text is None:
            text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValidationError("file not found", file=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ValidationError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=str(path)) from None
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ValidationError(f"invalid YAML: {exc.problem or exc}", file=str(path), line=line) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid YAML: {exc}", file=str(path)) from None


def line_of(obj: Any, default: int | None = None) -> int | None:
    """The line a mapping started on, when known."""
    return getattr(obj, "line", None) or default
