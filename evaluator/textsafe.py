r"""Untrusted text made safe for where people read it: the terminal, Markdown, CSV cells.

Names come from folders, registries, suites and uploaded tables; error texts quote them. Printed raw, an
ANSI sequence (``ESC [2K``), a carriage return or a newline in a folder name can erase a CI log line and
print a fake "all gates passed"; a name starting with ``=`` becomes a spreadsheet formula.

- :func:`term` escapes every control character (C0, DEL, C1, and the Unicode bidi and line-separator
  controls that reorder or break what is shown) as a visible ``\xNN`` / ``\uNNNN``, keeping tab and,
  with ``multiline=True``, newline.
- :func:`md_escape` backslashes the Markdown punctuation that makes links, images, emphasis, code, tables,
  headings, maths, HTML and Streamlit's ``:colour[...]`` directives, so a name is shown as typed.
- :func:`csv_cell` neutralises formula-looking text as OWASP recommends (a leading ``'``) but leaves numbers,
  negative ones included, as numbers.
"""

from __future__ import annotations

import re
from typing import Any

#: C0 controls except TAB and LF, DEL, C1 controls, bidi embeddings/overrides/isolates, LS/PS, BOM.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff"
_UNSAFE_MULTI = re.compile(f"[{_CONTROL}]")
_UNSAFE_ONE = re.compile(f"[{_CONTROL}\n]")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "|", "%")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _escape(match: re.Match[str]) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def term(text: Any, *, multiline: bool = False) -> str:
    """``text`` with control characters shown as escapes; newlines kept only when ``multiline``."""
    return (_UNSAFE_MULTI if multiline else _UNSAFE_ONE).sub(_escape, str(text))


def has_control(text: Any) -> bool:
    """True when ``text`` holds a character :func:`term` would escape (newline included)."""
    return bool(_UNSAFE_ONE.search(str(text)))


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]#!|<>~$])")


def md_escape(text: Any) -> str:
    r"""``text`` with Markdown punctuation backslashed (other control characters escaped as :func:`term` does).

    >>> md_escape("![x](http://h/t.png) *b*")
    '\\!\\[x\\](http://h/t.png) \\*b\\*'
    """
    return _MD_SPECIAL.sub(r"\\\1", term(text, multiline=True))


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet evaluates: numbers unchanged, formula-looking text prefixed with ``'``."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        value = "'" + value
    return term(value, multiline=True)


__all__ = ["csv_cell", "has_control", "md_escape", "term"]
