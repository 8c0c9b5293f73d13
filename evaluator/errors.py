"""Errors Frugal raises on purpose; each carries where the problem is.

The CLI maps them to exit codes (docs/ci.md): a gate, a regression or a failed cell is 1; anything the user
can fix (a bad file, a bad path, a corrupt store, a cache that no longer matches) is 2; a bug is 3.
"""

from __future__ import annotations

#: Exit codes of every `frugal` command.
EXIT_OK = 0
EXIT_FAILED = 1  # a gate failed, a regression was found, or some cells failed
EXIT_BAD_INPUT = 2  # bad input: a file, a flag, a path, a corrupt store or cache
EXIT_INTERNAL = 3  # an internal error (a bug): never 1, which CI reads as "a gate failed"


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


class ModelTampered(ModelNotAvailable):
    """A cached model's files no longer match what `frugal models pull` verified and recorded."""


class OutputError(FrugalError):
    """An output (results, report, badge) or the store could not be written; names the path (exit 2)."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(message)


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
