"""Generated answers: text metrics, answer extraction, suite validation, few-shot pairing, stop and truncation,
refusal for encoders, prefill/decode figures through the runner (fake backend), a user suite through --suite
and the upload path, and real greedy generation on SmolLM2-135M."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from evaluator.backends import GENERATION, GenerationRequest
from evaluator.cli import main
from evaluator.errors import FrugalError, ValidationError
from evaluator.metrics import compute_text
from evaluator.metrics.text import as_number, exact_match, normalize_answer, numeric_match, parse_number, token_f1
from evaluator.store import Store
from evaluator.suite import load_suite
from evaluator.tasks.generation import extract_span, item_detail
from evaluator.tasks.prompting import context, fewshot_examples

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------- metrics
def test_squad_normalisation_drops_case_punctuation_articles_and_extra_spaces():
    assert normalize_answer("The  Adults, only!") == "adults only"
    assert normalize_answer("an apple a day") == "apple day"
    assert normalize_answer("theory") == "theory"  # an article only as a whole word
    assert exact_match("Every 6 hours.", ["every 6 hours"]) and not exact_match("6 hours", ["every 6 hours"])


def test_token_f1_is_squads_bag_of_tokens_best_over_references():
    assert token_f1("every 6 hours", ["every 6 hours"]) == 1.0
    assert token_f1("6 hours", ["every 6 hours"]) == pytest.approx(0.8)
    # "liver disease": precision and recall 1/2 (F1 0.5); the second: precision 1, recall 1/2 (F1 2/3)
    assert token_f1("kidney disease", ["liver disease", "people with kidney disease"]) == pytest.approx(2 / 3)
    assert token_f1("", ["x"]) == 0.0 and token_f1("the", ["a"]) == 1.0  # both empty after normalisation


@pytest.mark.parametrize(("text", "value"), [
    ("$1,250.5 million", 1_250.5e6), ("USD 4.5 billion", 4.5e9), ("-12%", -12.0), ("\u22123.5", -3.5),
    ("12\u202f500 tonnes", 12_500.0), ("3,5", 3.0), ("CO2 is 2.5", 2.5), ("no figure", None), ("2.5bn", 2.5e9),
    ("1,20", 1.0),  # a comma before anything but three digits is no thousands separator
])
def test_numbers_are_read_with_separators_currency_and_scale_words(text, value):
    assert parse_number(text) == (pytest.approx(value) if value is not None else None)


def test_numeric_match_tolerance_edges_and_non_numeric_references():
    assert numeric_match("100.1", ["100"], tolerance=1e-3)  # exactly at the relative tolerance
    assert not numeric_match("100.2", ["100"], tolerance=1e-3)
    assert numeric_match("0", ["0"]) and not numeric_match("0.0001", ["0"])  # relative: zero needs zero
    assert numeric_match("4,500,000", ["$4.5 million"]) and numeric_match("-7", ["\u22127"])
    assert not numeric_match("7", ["-7"])
    assert numeric_match("megawatt hours", ["MWh", "megawatt hours"])  # a unit is compared by exact match
    assert not numeric_match("2", ["tCO2e"]) and as_number("tonnes of CO2 equivalent") is None
    assert not numeric_match("", ["12"])


def test_text_metrics_are_evaluate_modules_averaged_over_items():
    preds, refs = ["2 tablets", "every 4 hours", "1,200"], [["2 tablets"], ["every 6 hours"], ["1200"]]
    assert compute_text("exact_match", preds, refs) == pytest.approx(2 / 3)  # "1,200" normalises to "1200"
    assert compute_text("f1", preds, refs) == pytest.approx((1 + 2 / 3 + 1) / 3)
    # "1,200" is 1200; "2 tablets" is no number, so it is compared by exact match
    assert compute_text("numeric", preds, refs, tolerance=0.0) == pytest.approx(2 / 3)


def test_answer_extraction_spans_and_stored_details():
    raw = "  $1,200.50 in total\nthen more text"
    for how, want in (("first-line", "$1,200.50 in total"), ("number", "$1,200.50"),
                      ("regex:in (total)", "total"), ("regex:(nothing here)", "")):
        a, b = extract_span(raw, how)
        assert raw[a:b] == want, how
    assert item_detail("ab 42", (7.0, 3.0, 2.0, 3.0, 5.0)) == {
        "prompt_tokens": 7, "generated_tokens": 3, "stop_reason": "length", "answer": "42"}


# ------------------------------------------------------------------------------------ suite validation
def _suite(tmp_path: Path, task: str, rows: list[dict], name: str = "mine") -> Path:
    d = tmp_path / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "suite.yaml").write_text(f"name: {name}\ntasks:\n{task}")
    (d / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


_ROWS = [{"id": f"q{i}", "question": f"What is {i} plus {i}?", "target": str(2 * i),
          "split": "train" if i < 3 else "test"} for i in range(9)]
_TASK = """  - name: qa
    type: generation
    data: {path: qa.jsonl}
    prompt: "Q: {question}\\nA:"
"""


@pytest.mark.parametrize(("extra", "field", "needle"), [
    ("    max_new_tokens: 0\n", "max_new_tokens", "1 to 4096"),
    ("    stop: [\"\"]\n", "stop", "non-empty"),
    ("    extract: last-word\n", "extract", "first-line, number"),
    ("    extract: {regex: 'no group'}\n", "extract.regex", "(group)"),
    ("    extract: {regex: '(unclosed'}\n", "extract.regex", "invalid regular expression"),
    ("    metrics: [accuracy]\n", "metrics", "scores choices"),
    ("    num_fewshot: 4\n", "num_fewshot", "at least 4"),
    ("    chat: sometimes\n", "chat", "auto, on, off"),
    ("    tolerance: 2\n", "tolerance", "relative tolerance"),
    ("    labels: [a, b]\n", "labels", "take no 'labels'"),
    ("    temperature: 0.7\n", "temperature", "unknown field"),
])
def test_generation_fields_are_validated_with_file_line_and_field(tmp_path, extra, field, needle):
    d = _suite(tmp_path, _TASK + extra, _ROWS)
    with pytest.raises(ValidationError) as exc:
        load_suite(str(d))
    msg = str(exc.value)
    assert needle in msg and "suite.yaml, line " in msg and f"field '{field}'" in msg


def test_item_targets_are_validated_with_line_and_field(tmp_path):
    rows = [*_ROWS[:4], {"id": "bad", "question": "?", "split": "test"}]
    with pytest.raises(ValidationError, match=r"qa\.jsonl.*5.*target"):
        load_suite(str(_suite(tmp_path, _TASK, rows)))
    rows = [*_ROWS[:4], {"id": "bad", "question": "?", "targets": [], "split": "test"}]
    with pytest.raises(ValidationError, match="targets"):
        load_suite(str(_suite(tmp_path, _TASK, rows)))


def test_several_acceptable_answers_and_defaults(tmp_path):
    rows = [*_ROWS, {"id": "multi", "question": "Unit?", "targets": ["MWh", "megawatt hours"], "split": "test"}]
    task = load_suite(str(_suite(tmp_path, _TASK, rows))).tasks[0]
    multi = next(i for i in task.items if i.id == "multi")
    assert multi.target == "MWh" and multi.targets == ("MWh", "megawatt hours")
    assert task.chat == "auto" and task.num_fewshot == 0 and task.metrics == ("exact_match",)
    assert task.options == {"max_new_tokens": 32, "stop": ["\n\n"], "extract": "first-line", "tolerance": 0.001}


def test_builtin_generative_tasks_have_100_test_items_a_fifth_train_and_checked_targets():
    from evaluator.metrics.text import number_span

    for suite, name, metric in (("finance", "figures", "numeric"),
                                ("health", "leaflet-answers", "exact_match"),
                                ("climate", "report-values", "numeric")):
        task = next(t for t in load_suite(suite).tasks if t.name == name)
        assert task.type == "generation" and task.metrics[0] == metric
        assert len(task.items) >= 100 and 0.15 <= len(task.train_items) / (len(task.items) + len(
            task.train_items)) <= 0.25
        assert {i.difficulty for i in task.items} == {"easy", "medium", "hard"}
        for it in task.items:
            assert it.target, it.id
            if suite == "finance":  # every finance answer is a number the extraction step can find
                assert number_span(it.target) == (0, len(it.target)), it.id


def test_choice_tasks_keep_their_old_defaults_and_cell_keys():
    task = load_suite("finance").tasks[0]
    assert (task.num_fewshot, task.chat, dict(task.options)) == (0, "off", {})
    # the fingerprint payload only grows when a prompt-format field is set: old stores stay reusable
    from dataclasses import replace
    assert replace(task, num_fewshot=0, chat="off").fingerprint() == task.fingerprint()
    assert replace(task, chat="auto").fingerprint() != task.fingerprint()
    assert replace(task, num_fewshot=1).fingerprint() != task.fingerprint()


# ------------------------------------------------------------------------------------------- few-shot
def test_fewshot_examples_are_the_same_for_every_model_limit_and_order(tmp_path, fakes):
    d = _suite(tmp_path, _TASK + "    num_fewshot: 2\n", _ROWS)
    task = load_suite(str(d)).tasks[0]
    first = {it.id: [e.id for e in fewshot_examples(task, it)] for it in task.items}
    again = {it.id: [e.id for e in fewshot_examples(task, it)] for it in reversed(task.select(3))}
    assert all(first[k] == v for k, v in again.items())
    assert all(len(v) == 2 and k not in v and set(v) <= {"q0", "q1", "q2"} for k, v in first.items())
    assert len({tuple(v) for v in first.values()}) > 1  # drawn per item, not one fixed set
    # two different models see the very same prompt text (plain), so their cells stay paired
    from evaluator.backends.fake import FakeConfig, FakeLoaded

    a = FakeLoaded("a", "causal-lm", "cpu", "fake", frozenset({GENERATION}), config=FakeConfig(seed=1))
    b = FakeLoaded("b", "causal-lm", "cpu", "fake", frozenset({GENERATION}), config=FakeConfig(seed=9))
    it = task.items[0]
    assert context(task, it, a, False) == context(task, it, b, False)
    shots = fewshot_examples(task, it)
    assert context(task, it, a, False) == "\n\n".join(
        [*(f"Q: {e.fields['question']}\nA: {e.target}" for e in shots), f"Q: {it.fields['question']}\nA:"])


def test_chat_template_turns_and_the_on_refusal(tmp_path):
    from dataclasses import replace

    from evaluator.backends.fake import FakeConfig, FakeLoaded
    from evaluator.tasks.prompting import uses_chat

    task = load_suite(str(_suite(tmp_path, _TASK + "    num_fewshot: 1\n", _ROWS))).tasks[0]
    chat = FakeLoaded("c", "causal-lm", "cpu", "fake", frozenset({GENERATION}),
                      config=FakeConfig(chat_template=True))
    plain = FakeLoaded("p", "causal-lm", "cpu", "fake", frozenset({GENERATION}))
    assert uses_chat(task, chat) and not uses_chat(task, plain)  # auto
    it = task.items[0]
    ex = fewshot_examples(task, it)[0]
    assert context(task, it, chat, True) == (f"<|user|>Q: {ex.fields['question']}\nA:\n<|assistant|>{ex.target}\n"
                                             f"<|user|>Q: {it.fields['question']}\nA:\n<|assistant|>")
    with pytest.raises(FrugalError, match="no chat template"):
        uses_chat(replace(task, chat="on"), plain)
    assert not uses_chat(replace(task, chat="off"), chat)


# ---------------------------------------------------------------------- runner, store, reports (fake)
def _models(tmp_path: Path, models: dict[str, tuple[str, dict]]) -> Path:
    lines = ["models:"]
    for name, (kind, cfg) in models.items():
        d = tmp_path / "models" / name
        d.mkdir(parents=True)
        (d / "fake.json").write_text(json.dumps(cfg))
        lines += [f"  - name: {name}", f"    kind: {kind}", f"    path: {d}"]
    (tmp_path / "models.yaml").write_text("\n".join(lines) + "\n")
    return tmp_path / "models.yaml"


def test_user_suite_with_generation_and_fewshot_through_suite_path(tmp_path, capsys):
    d = _suite(tmp_path, _TASK + "    num_fewshot: 2\n    max_new_tokens: 4\n    stop: [\"\\n\"]\n"
                                 "    extract: number\n    metrics: [numeric, exact_match]\n", _ROWS)
    mf = _models(tmp_path, {
        "fake-lm": ("causal-lm", {"seed": 1, "replies": {"What is 3 plus 3?\nA:": "6\nQ: more",
                                                         "What is 4 plus 4?\nA:": "It is 8",
                                                         "What is 5 plus 5?\nA:": "ten ten ten ten ten"}}),
        "fake-enc": ("encoder", {"seed": 2, "fail_load": "an encoder must be refused before it loads"})})
    out = tmp_path / "out"
    code = main(["run", "--suite", str(d), "--model", "fake-lm", "--model", "fake-enc", "--variant", "fake",
                 "--models-file", str(mf), "--store", str(tmp_path / "s.sqlite"), "--out", str(out), "--repeats", "2",
                 "--meter", "estimate", "--limit", "4"])
    assert code == 0  # the encoder's cell does not apply (decided before loading): not a failure
    doc = json.loads((out / "results.json").read_text())
    cells = {c["model"]: c for c in doc["cells"]}
    enc = cells["fake-enc"]
    assert enc["status"] == "n/a" and "not applicable" in enc["error"] and "before loading" in enc["error"]
    assert "needs generation requests" in enc["error"] and "must be refused" not in enc["error"]
    lm = cells["fake-lm"]
    assert lm["status"] == "ok" and lm["task_type"] == "generation" and lm["n_items"] == 4
    assert lm["num_fewshot"] == 2 and lm["chat_template"] is False and lm["max_new_tokens"] == 4
    assert lm["answer_extraction"] == "number" and lm["scoring_method"] == "generate-greedy"
    # q3 "6" (stop at the newline), q4 "8" (from a sentence) are right; q5 runs into max_new_tokens
    items = lm["items"]
    assert items["id"] == ["q3", "q4", "q5", "q6"] and items["correct"][:3] == [True, True, False]
    assert items["output"][:3] == ["6", "It is 8", "ten ten ten ten"]
    assert lm["accuracy"] == pytest.approx(sum(items["correct"]) / 4) and lm["metrics"]["numeric"] == lm["accuracy"]
    assert lm["stop_reasons"]["stop"] >= 1 and lm["stop_reasons"]["length"] >= 1
    assert lm["truncation_rate"] == pytest.approx(lm["stop_reasons"]["length"] / 4)
    assert lm["generated_tokens"] >= 4 and lm["prompt_tokens"] > 4 * 4
    assert lm["prefill_energy_j"] > 0 and lm["decode_energy_j"] == pytest.approx(
        max(0.0, lm["energy_j"] - lm["prefill_energy_j"]))
    assert lm["prefill_energy_share"] == pytest.approx(lm["prefill_energy_j"] / lm["energy_j"])
    assert lm["energy_j_per_token"] == pytest.approx(lm["energy_j"] / lm["generated_tokens"])
    assert lm["energy_j_per_1k"] == pytest.approx(lm["energy_j"] / 4 * 1000)  # per 1,000 answered queries
    assert lm["time_to_first_token_s"] > 0
    if lm["decode_tokens_per_s"] is None:  # decode inside the subtraction's noise: neither figure is given
        assert lm["decode_energy_j_per_token"] is None
    else:  # the decode phase alone, over the tokens after each answer's first
        assert lm["decode_energy_j_per_token"] == pytest.approx(lm["decode_energy_j"] / (lm["generated_tokens"] - 4))
    csv_head = (out / "results.csv").read_text().splitlines()[0].split(",")
    assert {"energy_j_per_token", "prefill_energy_j", "truncation_rate", "decode_tokens_per_s",
            "decode_energy_j_per_token"} <= set(csv_head)
    assert "Generated answers" in (out / "report.html").read_text()
    assert "### Generated answers (1 cells)" in (out / "summary.md").read_text()
    # the store keeps the raw output, correctness, tokens, stop reason and the extracted answer
    st = Store(str(tmp_path / "s.sqlite"))
    recs = st.items(doc["run_id"], "mine", "qa", "fake-lm", "fake")
    det = item_detail(recs[1].output, recs[1].scores)
    assert det["answer"] == "8" and det["stop_reason"] == "eos" and recs[1].is_correct is True
    assert item_detail(recs[2].output, recs[2].scores)["stop_reason"] == "length"
    assert item_detail(recs[0].output, recs[0].scores)["stop_reason"] == "stop"


def test_generation_cells_are_reused_and_keyed_by_prompt_format(tmp_path):
    from evaluator.config import RunConfig
    from evaluator.runner import run

    mf = _models(tmp_path, {"fake-lm": ("causal-lm", {"seed": 1})})
    base = dict(models=("fake-lm",), variants=("fake",), repeats=1, meter="estimate", idle_s=0,
                store=str(tmp_path / "s.sqlite"), models_file=str(mf), limit=3)
    d1 = _suite(tmp_path / "a", _TASK + "    max_new_tokens: 3\n", _ROWS)
    first = run(RunConfig(suites=(str(d1),), **base))
    again = run(RunConfig(suites=(str(d1),), **base))
    assert again.cells[0].reused and again.cells[0].generated_tokens == first.cells[0].generated_tokens
    d2 = _suite(tmp_path / "b", _TASK + "    max_new_tokens: 3\n    num_fewshot: 1\n", _ROWS)
    other = run(RunConfig(suites=(str(d2),), **base))
    assert not other.cells[0].reused and other.cells[0].num_fewshot == 1


def test_a_generation_suite_uploads_as_a_zip(tmp_path):
    from evaluator.uploads import extract_suite_zip

    d = _suite(tmp_path, _TASK + "    num_fewshot: 1\n", _ROWS, name="upgen")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for p in d.iterdir():
            zf.write(p, f"upgen/{p.name}")
    placed = extract_suite_zip(buf.getvalue(), tmp_path / "uploads")
    task = load_suite(str(placed)).tasks[0]
    assert task.type == "generation" and task.num_fewshot == 1 and len(task.items) == 6


def test_stop_texts_max_new_tokens_and_eos_on_the_fake_backend():
    from evaluator.backends.fake import FakeConfig, FakeLoaded

    lm = FakeLoaded("f", "causal-lm", "cpu", "fake", frozenset({GENERATION}),
                    config=FakeConfig(replies={"a": "one two\nthree", "b": "x y z"}), work=1)
    out = lm.generate([GenerationRequest("a", 10, ("\n",)), GenerationRequest("b", 2, ()),
                       GenerationRequest("b", 10, ()), GenerationRequest("a", 10, ("two",))], 4)
    assert [(g.text, g.stop_reason, g.generated_tokens) for g in out] == [
        ("one two", "stop", 3), ("x y", "length", 2), ("x y z", "eos", 4), ("one ", "stop", 2)]


# ------------------------------------------------------------------------------- real model (SmolLM2)
@pytest.fixture(scope="module")
def smol(pulled):
    from evaluator.backends import get_backend
    from evaluator.models import resolve
    from evaluator.variants import resolve_variant

    lm = get_backend("torch").load(resolve(pulled["smollm2-135m"]), resolve_variant("fp32"), "cpu")
    yield lm
    lm.close()


def test_smollm2_greedy_generation_batched_equals_one_by_one_and_stops_for_the_right_reason(smol):
    reqs = [GenerationRequest("The capital of France is", 6, ("\n",)),
            GenerationRequest("Count: 1, 2, 3, 4,", 3, ()),
            GenerationRequest(smol.render_chat([{"role": "user", "content": "Say hello."}]), 12, ())]
    batched = smol.generate(smol.prepare(GENERATION, reqs), 3)
    alone = [smol.generate(smol.prepare(GENERATION, [r]), 1)[0] for r in reqs]
    assert batched == alone  # left padding changes nothing
    assert batched[1].stop_reason == "length" and batched[1].generated_tokens == 3
    assert batched[1].text.strip().startswith("5")
    assert all(g.prompt_tokens > 3 and g.generated_tokens <= r.max_new_tokens for g, r in zip(batched, reqs,
                                                                                                strict=True))
    assert "\n" not in batched[0].text and batched[0].stop_reason in ("stop", "eos", "length")
    assert smol.chat_template() and batched[2].stop_reason in ("eos", "length")
    first = smol.generate(smol.prepare(GENERATION, [GenerationRequest(reqs[0].prompt, 1, ("\n",))]), 1)[0]
    assert first.generated_tokens == 1 and batched[0].text.startswith(first.text)  # the prefill twin


def test_smollm2_generation_task_end_to_end_through_the_runner(pulled, tmp_path):
    from evaluator.config import RunConfig
    from evaluator.runner import run

    rows = [{"id": "t1", "question": "Passage: The parcel weighs 12 kg. How much does the parcel weigh?",
             "target": "12 kg", "split": "train"},
            {"id": "q1", "question": "Passage: The bridge is 40 metres long. How long is the bridge?",
             "targets": ["40 metres", "40 m"]},
            {"id": "q2", "question": "Passage: The meeting starts at 9 am. When does the meeting start?",
             "target": "9 am"},
            {"id": "q3", "question": "Passage: The tank holds 300 litres. How much does the tank hold?",
             "target": "300 litres"}]
    d = _suite(tmp_path, _TASK + "    num_fewshot: 1\n    max_new_tokens: 5\n    stop: [\"\\n\"]\n"
                                 "    chat: off\n    metrics: [exact_match, f1]\n", rows)
    res = run(RunConfig(suites=(str(d),), models=("smollm2-135m",), variants=("fp32",), repeats=1, meter="estimate",
                        idle_s=0, batch_size=4, store=str(tmp_path / "s.sqlite"),
                        models_file=str(ROOT / "models.yaml")))
    c = res.cells[0]
    assert c.status == "ok", c.error
    assert c.n_items == 3 and c.generated_tokens and 3 <= c.generated_tokens <= 15
    assert sum(c.stop_reasons.values()) == 3 and c.truncation_rate is not None
    assert c.prefill_energy_j and c.prefill_energy_j > 0 and c.decode_energy_j is not None
    assert c.time_to_first_token_s and c.time_to_first_token_s > 0 and c.energy_j_per_token > 0
    assert c.accuracy >= 2 / 3, c  # one-shot copying from the passage: SmolLM2-135M gets most of them
    recs = Store(str(tmp_path / "s.sqlite")).items(res.run_id, "mine", "qa", "smollm2-135m", "fp32")
    assert all(r.output and r.is_correct is not None for r in recs)
    assert sum(r.correct for r in recs) == c.n_correct


def test_items_page_shows_the_written_text_and_the_extracted_answer(tmp_path, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from evaluator.config import RunConfig
    from evaluator.runner import run

    d = _suite(tmp_path, _TASK + "    max_new_tokens: 6\n    stop: [\"\\n\"]\n    extract: number\n"
                                 "    metrics: [numeric]\n", _ROWS)
    mf = _models(tmp_path, {"fake-a": ("causal-lm", {"seed": 1, "replies": {"What is 3 plus 3": "I think 6 apples"}}),
                            "fake-b": ("causal-lm", {"seed": 2, "replies": {"What is 3 plus 3": "7"}})})
    store = tmp_path / "s.sqlite"
    res = run(RunConfig(suites=(str(d),), models=("fake-a", "fake-b"), variants=("fake",), repeats=1, limit=3,
                        meter="estimate", idle_s=0, store=str(store), models_file=str(mf)))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("FRUGAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FRUGAL_STORE", str(store))
    monkeypatch.setenv("FRUGAL_MODELS", str(mf))
    st.cache_data.clear()
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("app_pages/items.py")
    at.query_params.update(run=res.run_id, suite="mine", task="qa", a="fake-a:fake", b="fake-b:fake")
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    at.segmented_control(key="items_show").set_value("all").run()
    frame = at.dataframe[0].value
    row = frame[frame["item"] == "q3"].iloc[0]
    assert row["A: fake-a:fake"] == "✓ '6'" and row["B: fake-b:fake"] == "✗ '7'"
    assert row["A wrote (fake-a:fake)"] == "'I think 6 apples' (eos, 5 tokens)" and row["correct"] == "6"
    assert "choices" not in frame.columns


def test_a_suite_mixing_choice_and_generation_tasks_keeps_encoders_on_its_frontier(tmp_path, capsys):
    """The encoder's generation cell is "n/a" (not a failure); every point averages the tasks all can do."""
    d = tmp_path / "mixed"
    shutil.copytree(ROOT / "domains" / "finance", d)  # the built-in finance suite mixes both kinds
    mf = _models(tmp_path, {"fake-lm": ("causal-lm", {"seed": 1}), "fake-enc": ("encoder", {"seed": 2})})
    out = tmp_path / "out"
    code = main(["run", "--suite", str(d), "--model", "fake-lm", "--model", "fake-enc", "--variant", "fake",
                 "--models-file", str(mf), "--store", str(tmp_path / "s.sqlite"), "--out", str(out),
                 "--meter", "estimate", "--limit", "4"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    doc = json.loads((out / "results.json").read_text())
    status = {(c["task"], c["model"]): c["status"] for c in doc["cells"]}
    assert status[("figures", "fake-enc")] == "n/a" and status[("figures", "fake-lm")] == "ok"
    assert doc["status"] == "finished"
    (front,) = doc["frontiers"].values()
    pts = {p["model"]: p for p in front["points"]}
    assert set(pts) == {"fake-lm", "fake-enc"}  # the encoder is on the chart, over the same tasks as the LM
    assert pts["fake-lm"]["tasks"] == pts["fake-enc"]["tasks"] == 2 and pts["fake-lm"]["n_items"] == 8
    assert "figures is left out of it because fake-enc fake cannot do it" in printed
    assert "figures is left out of it" in (out / "report.html").read_text()
