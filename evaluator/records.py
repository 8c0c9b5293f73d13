"""Frozen result records. Units are in field names; serialisation happens at the edges.

The bottom of the dependency graph: records import nothing from the rest of the library.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: results.json and cell-key schema. 2: items carry a text target and output; cells carry task type and backend.
SCHEMA_VERSION = 2
#: The status of a cell whose task type its model cannot do (recorded with the reason; not a failure).
NOT_APPLICABLE = "n/a"


@dataclass(frozen=True)
class CellResult:
    """One (suite, task, model, variant) cell: accuracy, energy and footprint, with provenance."""

    suite: str
    task: str
    model: str
    variant: str
    #: "ok" | "failed" | "n/a" (not applicable: the model's backend cannot serve the task type, e.g. an encoder
    #: and a generation task; the reason is in ``error``; never a failure, and not on the suite's frontier)
    status: str
    error: str | None = None
    n_items: int = 0
    n_correct: int = 0
    accuracy: float | None = None
    accuracy_ci_low: float | None = None
    accuracy_ci_high: float | None = None
    #: Accuracy of a uniform random guess on these items; above_chance: the 95 % interval lies above it.
    chance_accuracy: float | None = None
    above_chance: bool | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    scoring_method: str = ""
    task_type: str = ""
    backend: str = ""
    backend_version: str = ""
    energy_j: float | None = None
    active_energy_j: float | None = None
    energy_ci_low: float | None = None
    energy_ci_high: float | None = None
    energy_j_per_item: float | None = None
    energy_j_per_1k: float | None = None
    energy_j_per_correct: float | None = None
    energy_method: str = ""
    is_estimate: bool = True
    energy_components_j: dict[str, float] = field(default_factory=dict)
    energy_is_stable: bool = True
    energy_unstable_reason: str | None = None
    gco2e: float | None = None
    duration_s: float | None = None
    duration_ci_low: float | None = None
    duration_ci_high: float | None = None
    cpu_time_s: float | None = None
    passes_per_window: int = 1
    repeats: int = 0
    #: The measured windows (items scored, energy, duration, CPU time in each: totals, evaluator/measure.py);
    #: the energy interval comes from them, and a cell extended with more items pools them.
    energy_windows: list[dict[str, Any]] = field(default_factory=list)
    prefill_windows: list[dict[str, Any]] = field(default_factory=list)
    deterministic: bool | None = None
    params: int | None = None
    nonzero_params: int | None = None
    size_mb: float | None = None
    peak_rss_mb: float | None = None
    weight_dtype: str | None = None
    load_s: float | None = None
    variant_params: dict[str, Any] = field(default_factory=dict)
    prompt_template: str = ""
    batch_size: int = 0
    # --- prompt format (every task type) and generated answers (task type generation; None/empty otherwise).
    # Token counts are summed over the cell's items (one pass); energies and durations are per pass, like
    # energy_j. decode = total - prefill (prefill: the same prompts with max_new_tokens=1). energy_j_per_1k
    # stays per 1,000 items, i.e. per 1,000 answered queries.
    num_fewshot: int = 0
    chat_template: bool = False
    max_new_tokens: int | None = None
    answer_extraction: str | None = None
    prompt_tokens: int | None = None
    generated_tokens: int | None = None
    stop_reasons: dict[str, int] = field(default_factory=dict)  # eos / stop / length -> items
    truncation_rate: float | None = None  # share of items stopped by max_new_tokens
    energy_j_per_token: float | None = None  # per generated token
    prefill_energy_j: float | None = None
    decode_energy_j: float | None = None
    prefill_energy_share: float | None = None
    prefill_duration_s: float | None = None
    decode_duration_s: float | None = None
    time_to_first_token_s: float | None = None  # prefill duration per batch
    decode_tokens_per_s: float | None = None
    decode_energy_j_per_token: float | None = None  # decode phase only, per token after each answer's first
    # --- end of generation fields
    # --- kernels and weight files (deployment runtimes, issue 14). fallback_kernel: the cell ran on a slow
    # fallback kernel for its variant on this hardware (e.g. bf16 without AVX512_BF16/AMX), so it measures
    # the fallback, not the method; fallback_reason says which and why. weights_sha256: the weight file the
    # backend served (a GGUF, ONNX graph or OpenVINO IR; empty for torch, whose fingerprint is in cell_key).
    fallback_kernel: bool = False
    fallback_reason: str | None = None
    weights_sha256: str = ""
    # --- end of kernel fields
    #: Where the cell was measured when an executor spread the grid (evaluator/executors.py): node, pid,
    #: GPU ids, pinned cores, threads, and the groups that ran beside it on that node; empty when local.
    placement: dict[str, Any] = field(default_factory=dict)
    cell_key: str = ""
    #: The cell key without the item set (evaluator/cellkey.py): a stored cell with this key and a subset of
    #: the items (same contents: ``items_digest``) is extended with the rest instead of measured again.
    setup_key: str = ""
    items_digest: str = ""
    #: Items measured earlier (another run, an earlier adaptive round) that this cell's figures include.
    extended_from_items: int = 0
    #: Whether its scoring pass was preceded by a warm-up batch (False: the loaded model had just run a
    #: pass of the same scoring method, for the cell before it).
    warmed_up: bool = True
    #: Wall time outside the measured windows, by phase, in seconds (all rounds of an extended cell):
    #: ``prepare`` (the task type's set-up: tokenising, an encoder's probe), ``warm_up`` (the batch before
    #: the first window, when there was one), ``measure`` (the measurement's own bookkeeping between
    #: windows). ``duration_s`` is the windows' time; ``load_s`` the model's load.
    phase_s: dict[str, float] = field(default_factory=dict)
    #: Resident memory (MB) an adaptive run held for other loaded models while this cell was measured
    #: (evaluator/pool.py): left out of the estimate meter's RAM term, which is the cell's own.
    held_rss_mb: float = 0.0
    #: Adaptive evaluation (evaluator/adaptive.py): the test items the task has, and why this cell stopped
    #: before seeing them all (None: it saw them all, or the run was not adaptive).
    items_available: int | None = None
    stopped_reason: str | None = None
    stopped_after_round: int | None = None
    reused: bool = False
    on_frontier: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        """Inverse of to_dict; ignores unknown keys (forward compatible)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class ItemRecord:
    """Per-item prediction, kept so paired tests can be run later.

    ``gold``/``pred``/``pred_norm`` are choice indices (-1 where a task type has none); ``target`` is the
    gold answer as text and ``output`` what the model answered, as text, so task types without choices
    fit the same record.
    """

    item_id: str
    gold: int
    pred: int
    pred_norm: int
    scores: tuple[float, ...]
    target: str = ""
    output: str = ""
    #: Whether the answer is right, when the task type decides it otherwise than by ``pred == gold``.
    is_correct: bool | None = None

    @property
    def correct(self) -> bool:
        """Whether the (acc) prediction is right."""
        return self.is_correct if self.is_correct is not None else self.pred == self.gold


@dataclass(frozen=True)
class SuitePoint:
    """A (model, variant) point of a suite: mean accuracy over tasks, energy per 1,000 items."""

    suite: str
    model: str
    variant: str
    accuracy: float
    accuracy_ci_low: float
    accuracy_ci_high: float
    energy_j_per_1k: float
    energy_method: str
    is_estimate: bool
    n_items: int
    tasks: int
    on_frontier: bool = False
    indistinguishable: bool = False
    grade: str = ""
    #: Mean chance accuracy of the tasks; above_chance: the point's 95 % interval lies above it.
    chance_accuracy: float | None = None
    above_chance: bool | None = None
    #: Per-item correctness, task -> item id -> correct, when the run's items are at hand: the recommendation
    #: then tests the difference between two points on the items both saw (a paired test).
    outcomes: dict[str, dict[str, bool]] | None = field(default=None, compare=False, repr=False)

    @property
    def label(self) -> str:
        """'model variant'."""
        return f"{self.model} {self.variant}"


@dataclass(frozen=True)
class RunResult:
    """What a finished run returns (the store holds the same)."""

    run_id: str
    store_path: str
    cells: tuple[CellResult, ...]
    frontiers: dict[str, list[SuitePoint]]
    environment: dict[str, Any]
    meter: dict[str, Any]
    status: str
    #: Per-item predictions by (suite, task, model, variant), when the result was read from a results.json
    #: that carries them; None: look them up in the store at ``store_path``.
    items: dict[tuple[str, str, str, str], list[ItemRecord]] | None = None

    @property
    def failed(self) -> list[CellResult]:
        """Cells that failed (not those that do not apply to their model)."""
        return [c for c in self.cells if c.status == "failed"]

    @property
    def not_applicable(self) -> list[CellResult]:
        """Cells whose task type the model's backend cannot serve (status "n/a")."""
        return [c for c in self.cells if c.status == NOT_APPLICABLE]
