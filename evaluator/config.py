"""RunConfig: everything a run needs, as one frozen dataclass. The CLI and the app both build one."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from evaluator.errors import ValidationError, close_matches
from evaluator.yamlio import key_line, load_yaml

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

    def check(self, bad: Any) -> None:
        """Raise ``bad(field, message)`` on a gate that can never work."""
        import math

        for name in ("max_accuracy_drop", "min_accuracy", "max_energy_per_1k"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not math.isfinite(value)):
                raise bad(f"gates.{name}", "must be a finite number")
        if self.min_accuracy is not None and not 0 <= self.min_accuracy <= 1:
            raise bad("gates.min_accuracy", "must be between 0 and 1")
        if self.max_accuracy_drop is not None and self.max_accuracy_drop < 0:
            raise bad("gates.max_accuracy_drop", "must be >= 0 points")
        if self.max_energy_per_1k is not None and self.max_energy_per_1k <= 0:
            raise bad("gates.max_energy_per_1k", "must be > 0 J per 1,000 items (no cell can use no energy)")
        if self.max_accuracy_drop is not None and not self.baseline:
            raise bad("gates.max_accuracy_drop", "needs a baseline MODEL:VARIANT")
        if self.baseline is not None and not _is_ref(self.baseline):
            raise bad("gates.baseline", f"{self.baseline!r} must be MODEL:VARIANT")
        if not isinstance(self.require_on_frontier, tuple | list):
            raise bad("gates.require_on_frontier", "must be a list of MODEL:VARIANT")
        for ref in self.require_on_frontier:
            if not _is_ref(ref):
                raise bad("gates.require_on_frontier", f"{ref!r} must be MODEL:VARIANT")


def _is_ref(ref: Any) -> bool:
    return isinstance(ref, str) and ":" in ref and "\x00" not in ref and all(p.strip() for p in ref.split(":", 1))


@dataclass(frozen=True)
class RunConfig:
    """A grid of suites x models x variants and how to measure it."""

    suites: tuple[str, ...] = DEFAULT_SUITES
    models: tuple[str, ...] = ("minilm-l6", "smollm2-135m")
    variants: tuple[str, ...] = DEFAULT_VARIANTS
    #: Only these tasks of the suites ("TASK" or "SUITE/TASK"); empty = every task. A suite none of whose
    #: tasks is selected is left out of the run; a selector that matches no task is an error (plan()).
    tasks: tuple[str, ...] = ()
    limit: int | None = None
    #: Whole passes over the items; 1 (the default) scores each item once, the energy interval coming from
    #: the measured windows within the pass (evaluator/measure.py).
    repeats: int = 1
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
    #: "local" (one process, cell after cell) or "ray" (groups spread over a Ray cluster; evaluator/executors.py)
    executor: str = "local"
    #: Ray cluster to join ("auto", "HOST:PORT"); None starts nothing and joins RAY_ADDRESS or "auto".
    ray_address: str | None = None
    #: How many times a Ray worker that dies mid-group (killed, out of memory) is retried.
    max_retries: int = 1
    #: Adaptive evaluation (evaluator/adaptive.py): items in ``rounds`` rounds, in an order seeded by ``seed``;
    #: a point confidently off the frontier at ``tolerance_pts`` stops.
    adaptive: bool = False
    rounds: int = 8
    seed: int = 0
    gates: Gates = field(default_factory=Gates)

    def validate(self, source: str = "run config") -> RunConfig:
        """Raise ValidationError on values that can never work (names the field)."""
        import math

        from evaluator.carbon import grid_intensity
        from evaluator.errors import FrugalError
        from evaluator.meters import METERS

        def bad(fld: str, msg: str) -> ValidationError:
            return ValidationError(msg, file=source, field=fld)

        for name in ("suites", "models", "variants"):
            values = getattr(self, name)
            if not values:
                raise bad(name, f"at least one {name[:-1]} is needed")
            if not all(isinstance(v, str) and v.strip() and "\x00" not in v for v in values):
                raise bad(name, "must be a list of non-empty names")
        if not isinstance(self.tasks, tuple) or not all(
                isinstance(v, str) and v.strip() and "\x00" not in v and v.count("/") <= 1 for v in self.tasks):
            raise bad("tasks", "must be a list of task names (TASK or SUITE/TASK)")
        if not isinstance(self.adaptive, bool):
            raise bad("adaptive", "must be true or false")
        for name in ("limit", "repeats", "batch_size", "threads", "rounds", "seed"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise bad(name, "must be a whole number")
        for name in ("watts_per_core", "idle_s", "grid_intensity", "pue", "tolerance_pts"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                      or not math.isfinite(value)):
                raise bad(name, "must be a finite number")
        for name in ("device", "meter", "encoder_method", "country", "models_file", "store", "out", "executor",
                     "ray_address"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise bad(name, "must be text without NUL characters")
        if self.limit is not None and self.limit < 1:
            raise bad("limit", "must be a positive number of items")
        if not 1 <= self.repeats <= 100:
            raise bad("repeats", "must be between 1 and 100")
        if not 2 <= self.rounds <= 64:
            raise bad("rounds", "must be between 2 and 64")
        if self.adaptive and self.executor != "local":
            raise bad("adaptive", "adaptive rounds run on the local executor only (--executor local)")
        if not 1 <= self.batch_size <= 1024:
            raise bad("batch_size", "must be between 1 and 1024")
        if self.threads is not None and self.threads < 1:
            raise bad("threads", "must be >= 1")
        if self.device not in ("auto", "cpu", "cuda"):
            raise bad("device", "must be auto, cpu or cuda")
        if self.executor not in ("local", "ray"):
            raise bad("executor", "must be local or ray")
        retries = self.max_retries
        if isinstance(retries, bool) or not isinstance(retries, int) or not 0 <= retries <= 10:
            raise bad("max_retries", "must be a whole number between 0 and 10")
        if self.encoder_method not in ("auto", "zero-shot", "probe"):
            raise bad("encoder_method", "must be auto, zero-shot or probe")
        if self.meter not in METERS:
            raise bad("meter", f"unknown meter {self.meter!r}.{close_matches(self.meter, tuple(METERS))}")
        if self.watts_per_core is not None and not 0 < self.watts_per_core <= 1000:
            raise bad("watts_per_core", "must be more than 0 and at most 1000 W")
        if self.pue < 1.0:
            raise bad("pue", "a PUE is >= 1.0")
        if not 0 <= self.idle_s <= 3600:
            raise bad("idle_s", "must be between 0 and 3600 seconds")
        if self.tolerance_pts < 0:
            raise bad("tolerance_pts", "must be >= 0 points")
        try:
            grid_intensity(self.country, self.grid_intensity)
        except FrugalError as exc:
            raise bad("grid_intensity" if self.grid_intensity is not None else "country", str(exc)) from None
        self.gates.check(bad)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (stored with the run)."""
        return asdict(self)


_LIST_FIELDS = {"suites", "models", "variants", "tasks"}
_GATE_FIELDS = {f.name for f in fields(Gates)}


def load_config(path: str | Path, *, gate_overrides: dict[str, Any] | None = None, **overrides: Any) -> RunConfig:
    """Read a YAML run config (same fields as RunConfig; gates under 'gates:'); errors name file/line/field.

    ``overrides`` (command-line flags) win over the file, gate by gate for ``gate_overrides``; an error in
    a value that came from the command line names the command line instead of the file.
    """
    path = Path(path)
    f = str(path)
    doc = load_yaml(path)
    if doc is None:
        raise ValidationError("the run config is empty: expected a mapping of run settings", file=f, line=1)
    if not isinstance(doc, dict):
        raise ValidationError("expected a mapping of run settings", file=f, line=1)
    names = {fl.name for fl in fields(RunConfig)}
    kwargs: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in names:
            raise ValidationError(f"unknown setting.{close_matches(str(key), tuple(names))}", file=f,
                                  line=key_line(doc, key), field=str(key))
        kwargs[key] = _coerce(key, value, path, key_line(doc, key))
    flags = {k: v for k, v in overrides.items() if v not in (None, (), [])}
    kwargs.update(flags)
    if gate_overrides:
        kwargs["gates"] = replace(kwargs.get("gates", Gates()), **gate_overrides)
    config = RunConfig(**kwargs)

    def where(fld: str) -> tuple[str, int | None]:
        top, _, sub = fld.partition(".")
        if top in flags or (top == "gates" and sub in (gate_overrides or {})):
            return "command line", None
        if top in doc:
            return f, key_line(doc[top], sub, key_line(doc, top)) if sub else key_line(doc, top)
        return f, None

    try:
        config.validate(f)
        check_references(config, f)
    except ValidationError as exc:
        if exc.file != f or not exc.field:
            raise
        file, line = where(exc.field)
        raise ValidationError(exc.reason, file=file, line=line, field=exc.field) from None
    return config


def check_references(config: RunConfig, source: str = "run config") -> None:
    """Check that every suite, model, variant and gate reference resolves; raise ValidationError naming the field.

    Only names are resolved here (no model is loaded, and suite data is read only to check ``tasks``); a
    models file's own errors name that file, its line and field.
    """
    from evaluator.errors import FrugalError
    from evaluator.models import get_spec, load_registry, registry_source
    from evaluator.suite import find_suite
    from evaluator.variants import resolve_variant

    def bad(fld: str, msg: str) -> ValidationError:
        return ValidationError(msg, file=source, field=fld)

    for s in config.suites:
        try:
            find_suite(s)
        except (FrugalError, OSError, ValueError) as exc:
            raise bad("suites", str(exc)) from None
    if config.tasks:  # reads the suites (their data too): a selector must name one of their tasks
        from evaluator.suite import load_suite, select_tasks

        try:
            select_tasks(tuple(load_suite(s) for s in dict.fromkeys(config.suites)), config.tasks)
        except ValidationError as exc:
            if exc.field != "tasks":
                raise
            raise bad("tasks", exc.reason) from None
    if config.models_file is not None and not Path(config.models_file).is_file():
        raise bad("models_file", f"file not found: {config.models_file}")
    path, why = registry_source(config.models_file)
    registry = load_registry(path, named=why != "packaged default")
    specs = []
    for m in config.models:
        try:
            specs.append(get_spec(m, registry))
        except (FrugalError, OSError, ValueError) as exc:
            raise bad("models", str(exc)) from None
    try:
        check_unique_models(specs, registry)
    except FrugalError as exc:
        raise bad("models", str(exc)) from None
    variants = []
    for v in config.variants:
        try:
            variants.append(resolve_variant(v))
        except FrugalError as exc:
            raise bad("variants", str(exc)) from None
    cells = {f"{m.name}:{v.name}" for m in specs for v in variants}
    for fld, refs in (("gates.baseline", [config.gates.baseline] if config.gates.baseline else []),
                      ("gates.require_on_frontier", config.gates.require_on_frontier)):
        for ref in refs:
            if ref not in cells:
                raise bad(fld, f"gate refers to {ref!r}, which is not in this run's grid "
                               f"(models x variants: {', '.join(sorted(cells))})")


def check_unique_models(specs: Any, registry: dict[str, Any]) -> None:
    """Refuse two models of one name, and a model folder named like a registry entry (FrugalError naming both).

    Either would store two models' cells under one name, the second overwriting the first.
    """
    from evaluator.errors import FrugalError

    seen: dict[str, Any] = {}
    for spec in specs:
        where = spec.path or "models file"
        if spec.name in registry and registry[spec.name] != spec:
            raise FrugalError(f"the model folder {spec.path} has the name of the registry entry {spec.name!r}; "
                              f"rename the folder, or add it to a models file (--models-file) under another name")
        if spec.name in seen:
            raise FrugalError(f"two models in this run are named {spec.name!r} ({seen[spec.name]} and {where}); "
                              f"model names in a run must be unique")
        seen[spec.name] = where


def _coerce(key: str, value: Any, path: Path, line: int | None) -> Any:
    import math

    def bad(msg: str, fld: str = key, at: int | None = line) -> ValidationError:
        return ValidationError(msg, file=str(path), line=at, field=fld)

    typ = {f.name: f.type for f in fields(RunConfig)}[key]
    if key in _LIST_FIELDS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise bad("must be a non-empty list of names")
        return tuple(value)
    if key == "gates":
        if not isinstance(value, dict):
            raise bad("must be a mapping of gates")
        for g in value:
            if g not in _GATE_FIELDS:
                raise bad(f"unknown gate.{close_matches(str(g), tuple(_GATE_FIELDS))}", f"gates.{g}",
                          key_line(value, g, line))
        g = dict(value)
        for num in ("max_accuracy_drop", "min_accuracy", "max_energy_per_1k"):
            v = g.get(num)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
                raise bad("must be a finite number", f"gates.{num}", key_line(value, num, line))
        if g.get("baseline") is not None and not isinstance(g["baseline"], str):
            raise bad("must be MODEL:VARIANT", "gates.baseline", key_line(value, "baseline", line))
        ref = g.get("require_on_frontier")
        if isinstance(ref, str):
            ref = [ref]
        if ref is not None and (not isinstance(ref, list) or not all(isinstance(r, str) for r in ref)):
            raise bad("must be a list of MODEL:VARIANT", "gates.require_on_frontier",
                      key_line(value, "require_on_frontier", line))
        g["require_on_frontier"] = tuple(ref or ())
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
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise bad("must be a finite number")
        return float(value)
    if value is None and "None" in str(typ):
        return None
    if not isinstance(value, str):
        raise bad("must be a string")
    return value
