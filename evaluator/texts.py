"""Text checks and line-oriented readers shared by every reader of user data (suites, uploads, task types).

Readers raise the error class their caller passes (a ValidationError subclass), always naming the line.
"""

from __future__ import annotations

import json
from typing import Any


def is_text(s: str) -> bool:
    r"""True when ``s`` can be stored and tokenised: encodable as UTF-8, no NUL characters.

    >>> is_text("ok"), is_text("a\x00b"), is_text("\ud800")
    (True, False, False)
    """
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in s


def split_jsonl_lines(text: str) -> list[str]:
    """JSONL lines: split on newline only (a JSON string may hold U+2028 or U+0085 raw), minus a trailing CR."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def jsonl_objects(text: str, file: str, error: Any, max_line_chars: int | None = None) -> list[tuple[int, dict]]:
    r"""(line number, object) for each non-blank line of a JSONL text; ``error(message, file=, line=)`` otherwise.

    >>> jsonl_objects('{"a": 1}\n\n{"b": 2}', "f.jsonl", ValueError)
    [(1, {'a': 1}), (3, {'b': 2})]
    """
    rows = []
    for n, line in enumerate(split_jsonl_lines(text), 1):
        if not line.strip():
            continue
        if max_line_chars is not None and len(line) > max_line_chars:
            raise error(f"line longer than {max_line_chars} characters", file=file, line=n)
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file, line=n) from None
        except (ValueError, RecursionError) as exc:  # a number too long to convert; nesting too deep
            msg = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
            raise error(f"invalid JSON: {msg}", file=file, line=n) from None
        if not isinstance(obj, dict):
            raise error("each line must be a JSON object", file=file, line=n)
        rows.append((n, obj))
    return rows


def unclosed_quote_line(text: str, delimiter: str = ",", quotechar: str = '"') -> int | None:
    r"""The line (1-based) where a quoted field starts that is never closed, else None.

    Follows the csv module's (non-strict) reading: a quote opens a quoted field only at the start of a
    field; inside one, a doubled quote is a literal quote and a single quote closes it. The csv module
    itself reads such a file silently as one last row holding the rest of the file.

    >>> unclosed_quote_line('a,b\n"x,1\ny,2\n')
    2
    >>> unclosed_quote_line('a,b\n"x\ny",1\n') is None
    True
    """
    line, in_quotes, at_field_start, opened_at = 1, False, True, 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if in_quotes:
            if ch == quotechar:
                if i + 1 < n and text[i + 1] == quotechar:
                    i += 1  # an escaped quote
                else:
                    in_quotes = False
            elif ch == "\n":
                line += 1
        elif ch == quotechar and at_field_start:
            in_quotes, opened_at = True, line
        elif ch == delimiter:
            at_field_start = True
            i += 1
            continue
        elif ch == "\n":
            line += 1
            at_field_start = True
            i += 1
            continue
        elif ch == "\r":
            i += 1
            continue
        if not in_quotes or ch != "\n":
            at_field_start = False
        i += 1
    return opened_at if in_quotes else None
