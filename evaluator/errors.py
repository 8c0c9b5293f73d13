"""Errors Frugal raises on purpose; each carries where the problem is."""

from __future__ import annotations


class FrugalError(Exception):
    """Base class: a problem the user can act on (exit code 2 in the CLI)."""


class ValidationError(FrugalError):
    """Bad input: names the file, the line (or item) and the field."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 field: str | None = None, row: int | None = None) -> None:
        self.file, self.line, self.field, self.row, self.reason = file, line, field, row, message
        where = []
        if file:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if field:
            where.append(f"field '{field}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{': '.join([', '.join(where), message]) if where else message}")


class ModelNotAvailable(FrugalError):
    """A model is neither at its local path, in the cache, nor reachable on the Hub."""


class VariantNotApplicable(FrugalError):
    """A variant cannot be applied to this model (stored as a failed cell, not a crash)."""


class GateFailed(FrugalError):
    """A CI gate failed (exit code 1)."""


def close_matches(name: str, options: list[str] | tuple[str, ...]) -> str:
    """Return a ' Did you mean ...?' hint listing close matches, or the known names."""
    import difflib

    near = difflib.get_close_matches(name, list(options), n=3, cutoff=0.5)
    if near:
        return f" Did you mean {', '.join(repr(n) for n in near)}?"
    return f" Known: {', '.join(sorted(options))}."
