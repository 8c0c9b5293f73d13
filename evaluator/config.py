"""RunConfig: everything a run needs, as one frozen dataclass. The CLI and the app both build one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from evaluator.errors import ValidationError, close_matches
from evaluator.yamlio import line_of, load_yaml

DEFAULT_SUITES = ("finance", "health", "climate")
DEFAULT_MODELS = ("minilm-l6", "mpnet-base", "smollm2-135m", "gemma3-270m", "qwen2.5-0.5b", "qwen2.5-1.5b")
DEFAULT_VARIANTS = ("fp32", "bf16")


@dataclass(frozen=True)
class Gates:
    """CI pass/fail gates (all optional)."""

    max_accuracy_drop: float | None = None  # points
    baseline: str | None = None  # MODEL:VARIANT
    min_accuracy: float | None = None  # 0..1
    max_energy_per_1k: float | None = None  # joules per 1,000 items
    require_on_frontier: tuple[str, ...] = ()  # MODEL:VARIANT

    def any(self) -> bool:
        """True when at least one gate is set."""
        return any(v not in (None, ()) for v in asdict(self).values())


@dataclass(frozen=True)
class RunConfig:
    """A grid of suites x models x variants and how to measure it."""

    suites: tuple[str, ...] = DEFAULT_SUITES
    models: tuple[str, ...] = ("minilm-l6", "smollm2-135m")
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    limit: int | None = None
    repeats: int = 3
    batch_size: int = 16
    threads: int | None = None
    device: str = "auto"
    meter: str = "auto"
    watts_per_core: float | None = None
    idle_s: float = 3.0
    country: str | None = None
    grid_intensity: float | None = None
    pue: float = 1.0
    encoder_method: str = "auto"  # auto | zero-shot | probe
    models_file: str | None = None
    store: str | None = None
    out: str | None = None
    force: bool = False
    tolerance_pts: float = 2.0
    gates: Gates = field(default_factory=Gates)

    def validate(self, source: str = "run config") -> RunConfig:
        """Raise ValidationError on values that can never work."""
        def bad(fld: str, msg: str) -> ValidationError:
            return ValidationError(msg, file=source, field=fld)

        if not self.suites:
            raise bad("suites", "at least one suite is needed")
        if not self.models:
            raise bad("models", "at least one model is needed")
        if not self.variants:
            raise bad("variants", "at least one variant is needed")
        if self.limit is not None and self.limit < 1:
            raise bad("limit", "must be a positive number of items")
        if not 1 <= self.repeats <= 100:
            raise bad("repeats", "must be between 1 and 100")
        if not 1 <= self.batch_size <= 1024:
            raise bad("batch_size", "must be between 1 and 1024")
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad("device", "must be auto, cpu or cuda")
        if self.encoder_method not in ("auto", "zero-shot", "probe"):
            raise bad("encoder_method", "must be auto, zero-shot or probe")
        if self.pue < 1.0:
            raise bad("pue", "a PUE is >= 1.0")
        if self.idle_s < 0:
            raise bad("idle_s", "must be >= 0")
        if self.gates.max_accuracy_drop is not None and not self.gates.baseline:
            raise bad("max_accuracy_drop", "needs a baseline MODEL:VARIANT")
        for ref in (*self.gates.require_on_frontier, *([self.gates.baseline] if self.gates.baseline else [])):
            if ":" not in ref:
                raise bad("gates", f"{ref!r} must be MODEL:VARIANT")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored with the run)."""
        return asdict(self)


_LIST_FIELDS = {"suites", "models", "variants"}
_GATE_FIELDS = {f.name for f in fields(Gates)}


def load_config(path: str | Path, **overrides: Any) -> RunConfig:
    """Read a YAML run config (same fields as RunConfig; gates under 'gates:'); errors name file/line/field."""
    path = Path(path)
    doc = load_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ValidationError("expected a mapping of run settings", file=str(path), line=1)
    names = {f.name for f in fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in names:
            raise ValidationError(f"unknown setting.{close_matches(str(key), tuple(names))}", file=str(path),
                                  line=line_of(doc), field=str(key))
        kwargs[key] = _coerce(key, value, path, line_of(doc))
    kwargs.update({k: v for k, v in overrides.items() if v not in (None, (), [])})
    try:
        return RunConfig(**kwargs).validate(str(path))
    except TypeError as exc:
        raise ValidationError(str(exc), file=str(path)) from None


def _coerce(key: str, value: Any, path: Path, line: int | None) -> Any:
    def bad(msg: str) -> ValidationError:
        return ValidationError(msg, file=str(path), line=line, field=key)

    typ = {f.name: f.type for f in fields(RunConfig)}[key]
    if key in _LIST_FIELDS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad("must be a list of names")
        return tuple(value)
    if key == "gates":
        if not isinstance(value, dict):
            raise bad("must be a mapping of gates")
        for g in value:
            if g not in _GATE_FIELDS:
                raise ValidationError(f"unknown gate.{close_matches(str(g), tuple(_GATE_FIELDS))}", file=str(path),
                                      line=line_of(value, line), field=f"gates.{g}")
        g = dict(value)
        if isinstance(g.get("require_on_frontier"), str):
            g["require_on_frontier"] = [g["require_on_frontier"]]
        g["require_on_frontier"] = tuple(g.get("require_on_frontier") or ())
        for num in ("max_accuracy_drop", "min_accuracy", "max_energy_per_1k"):
            if g.get(num) is not None and (isinstance(g[num], bool) or not isinstance(g[num], int | float)):
                raise ValidationError("must be a number", file=str(path), line=line_of(value, line),
                                      field=f"gates.{num}")
        return Gates(**g)
    if "bool" in str(typ):
        if not isinstance(value, bool):
            raise bad("must be true or false")
        return value
    if "int" in str(typ) and "float" not in str(typ):
        if value is None and "None" in str(typ):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("must be a whole number")
        return value
    if "float" in str(typ):
        if value is None and "None" in str(typ):
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad("must be a number")
        return float(value)
    if value is not None and not isinstance(value, str):
        raise bad("must be a string")
    return value
