"""Safe YAML loading that remembers line numbers, so errors can name the line.

Only plain data is built (SafeLoader: no object construction from tags). On top of that, a document
is refused when its mapping keys are not text or repeat, when it nests deeper than
:data:`MAX_DEPTH`, when its aliases would expand to more than :data:`MAX_NODES` nodes (a
"billion laughs" document), or when the file is larger than :data:`MAX_YAML_BYTES` or is not UTF-8.
Every refusal is a :class:`ValidationError` naming the file and, where it has one, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evaluator.errors import ValidationError

MAX_YAML_BYTES = 10_000_000
MAX_DEPTH = 64
MAX_NODES = 200_000
_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


class LineDict(dict):
    """A dict from YAML that knows the line (1-based) it started on, and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    """SafeLoader (no object construction) whose mappings are LineDicts, with a nesting limit."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Compose as usual, refusing documents nested deeper than MAX_DEPTH."""
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _KeyError(yaml.constructor.ConstructorError):
    """A bad mapping key; ``key`` names it (the error's field)."""

    def __init__(self, key: str, problem: str, mark: yaml.Mark) -> None:
        super().__init__(None, None, problem, mark)
        self.key = key


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineDict:
    first: dict[str, int] = {}
    for key_node, _ in node.value:  # duplicates among the mapping's own keys (merged '<<' keys may repeat)
        if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
            line = key_node.start_mark.line + 1
            if key_node.value in first:
                raise _KeyError(key_node.value, f"duplicate key (first on line {first[key_node.value]})",
                                key_node.start_mark)
            first[key_node.value] = line
    loader.flatten_mapping(node)
    out = LineDict()
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)[:40]
            raise _KeyError(str(shown)[:80], "a mapping key must be text; quote it", key_node.start_mark)
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    out.line = node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _check_expansion(root: yaml.Node) -> None:
    """Refuse documents whose aliases expand to more than MAX_NODES nodes, or refer to themselves."""
    size: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if isinstance(node, yaml.ScalarNode):
            size[key] = 1
            continue
        children = ([n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
                    else list(node.value))
        if done:
            active.discard(key)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_NODES:
                raise yaml.composer.ComposerError(
                    None, None, f"aliases expand to more than {MAX_NODES} values (a 'billion laughs' document?)",
                    node.start_mark)
            continue
        if key in size:
            continue
        if key in active:
            raise yaml.composer.ComposerError(None, None, "an alias refers to the value that contains it",
                                              node.start_mark)
        active.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in size)


def _line_at(text: str | bytes, offset: int) -> int:
    return text[:offset].count("\n" if isinstance(text, str) else b"\n") + 1


def decode_text(raw: bytes, file: str) -> str:
    """UTF-8 (with or without a BOM) -> str; anything else is a ValidationError naming the file and line."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise ValidationError(f"not UTF-8 text (it starts with a {name} byte-order mark); save it as UTF-8",
                                  file=file, line=1)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=file,
                              line=_line_at(raw, exc.start)) from None


def load_yaml(path: str | Path, text: str | None = None) -> Any:
    """Parse a YAML file safely; syntax errors become ValidationErrors naming file and line."""
    path = Path(path)
    f = str(path)
    try:
        if text is None:
            if path.stat().st_size > MAX_YAML_BYTES:
                raise ValidationError(f"larger than {MAX_YAML_BYTES} bytes", file=f)
            text = decode_text(path.read_bytes(), f)
    except FileNotFoundError:
        raise ValidationError("file not found", file=f) from None
    except OSError as exc:
        raise ValidationError(f"cannot read: {exc.strerror or exc}", file=f) from None
    except ValueError as exc:  # an embedded NUL in the path
        raise ValidationError(f"not a usable file name ({exc})", file=f) from None
    loader = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise ValidationError(f"invalid YAML: {exc.problem or exc.context or exc}", file=f, line=line,
                              field=getattr(exc, "key", None)) from None
    except yaml.reader.ReaderError as exc:
        line = _line_at(text, exc.position) if isinstance(exc.position, int) else None
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise ValidationError(f"invalid YAML: unacceptable character {char}", file=f, line=line) from None
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid YAML: {exc}", file=f) from None
    except RecursionError:
        raise ValidationError("invalid YAML: nested too deeply", file=f) from None
    finally:
        if loader is not None:
            loader.dispose()


def line_of(obj: Any, default: int | None = None) -> int | None:
    """The line a mapping started on, when known."""
    return getattr(obj, "line", None) or default


def key_line(obj: Any, key: str, default: int | None = None) -> int | None:
    """The line of ``key`` in a mapping from :func:`load_yaml`, else the mapping's line, else ``default``."""
    lines = getattr(obj, "key_lines", None) or {}
    return lines.get(key) or line_of(obj, default)
