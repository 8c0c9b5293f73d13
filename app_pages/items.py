"""Items page: two cells of the same task side by side, or one cell's answers on every item.

Shows the items where their answers differ (or all items) with text, choices and each answer, and
McNemar's paired test on per-item correctness. For generated answers (task type generation) each answer is
the extracted answer, with the text the model wrote, its stop reason and token count beside it.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from app_pages import common as C

st.title("Items")
st.caption("Pick two cells of the same task (say a model in fp32 and bf16) and see where they answer "
           "differently. McNemar's test says whether the difference in accuracy is more than chance.")


@st.cache_data(show_spinner=False, max_entries=64)
def cell_items(run_id: str, path: str, version: str, suite: str, task: str, model: str, variant: str,
               generation: bool = False) -> list:
    """Per-item answers of one cell, as plain tuples (item_id, gold, pred, correct, target, output, detail).

    ``detail`` (generation only): prompt and generated tokens, stop reason and the extracted answer.
    """
    from evaluator.store import Store
    from evaluator.tasks.generation import item_detail

    _ = version
    return [(i.item_id, i.gold, i.pred, i.correct, i.target, i.output,
             item_detail(i.output, i.scores) if generation else {})
            for i in Store(path).items(run_id, suite, task, model, variant)]


def answer_of(item: tuple, choices: list[str]) -> str:
    """'✓ B. text' for a choice; for a generated answer, the extracted answer."""
    mark = "✓ " if item[3] else "✗ "
    if not GENERATION:
        return mark + choice_text(choices, item[2])
    return mark + (repr(item[6].get("answer", "")) if item[6] else repr(item[5]))


def written_of(item: tuple) -> str:
    """What a model wrote, with its stop reason and generated tokens."""
    d = item[6]
    return f"{item[5]!r} ({d.get('stop_reason', '?')}, {d.get('generated_tokens', '?')} tokens)" if d else repr(item[5])


def same_answer(x: tuple, y: tuple) -> bool:
    """Whether two cells answered an item alike (choice index, or extracted answer)."""
    return (x[6].get("answer"), x[5]) == (y[6].get("answer"), y[5]) if GENERATION else x[2] == y[2]


def suite_texts(config: dict[str, Any], suite: str) -> dict[str, Any] | None:
    """Item texts of ``suite``, found among the run's suite references (names or folders)."""
    errors = []
    for ref in config.get("suites", []):
        try:
            data = C.suite_item_texts(ref)
        except Exception as exc:  # noqa: BLE001 - a moved or deleted upload
            errors.append(f"{ref}: {exc}")
            continue
        if data["name"] == suite:
            return data
    why = f" ({C.md(C.first_line('; '.join(errors), 200))})" if errors else ""
    st.warning(f"The suite files of {C.md(repr(suite))} cannot be read any more{why}; showing item ids only.")
    return None


def choice_text(choices: list[str], idx: int) -> str:
    """'B. text' for a choice index."""
    if 0 <= idx < len(choices):
        return f"{chr(65 + idx)}. {choices[idx]}" if len(choices) <= 26 else f"{idx}. {choices[idx]}"
    return f"#{idx}"


run_id, result, _runs, row = C.pick_run_or_stop("No runs yet, so no items to compare.")
version = C.run_version(row)
ok = [c for c in result.cells if c.status == "ok"]
suites = list(dict.fromkeys(c.suite for c in ok))
if not suites:
    st.info("This run has no finished cells to compare.")
    C.failed_cells_box(result)
    st.stop()
qp = st.query_params
c1, c2 = st.columns(2)
suite = c1.selectbox("Suite", suites, index=suites.index(qp["suite"]) if qp.get("suite") in suites else 0,
                     key=f"items_suite_{run_id}")
tasks = list(dict.fromkeys(c.task for c in ok if c.suite == suite))
task = c2.selectbox("Task", tasks, index=tasks.index(qp["task"]) if qp.get("task") in tasks else 0,
                    key=f"items_task_{run_id}_{suite}")
labels = [f"{c.model}:{c.variant}" for c in ok if c.suite == suite and c.task == task]
GENERATION = any(c.task_type == "generation" for c in ok if c.suite == suite and c.task == task)
texts = suite_texts(row.get("config") or {}, suite)
task_texts = (texts or {}).get("tasks", {}).get(task, {})
TEXT_COLUMNS = {"item": st.column_config.TextColumn("item", width="small"),
                "text": st.column_config.TextColumn("text", width="large"),
                "choices": st.column_config.TextColumn("choices", width="large"),
                "correct": st.column_config.TextColumn("correct", width="medium")}


def answers_table(label: str) -> None:
    """Every item of one cell with its answer (the view for a cell with nothing to compare it with)."""
    import pandas as pd

    m, v = label.split(":", 1)
    items = cell_items(run_id, C.store_path(), version, suite, task, m, v, GENERATION)
    rows = []
    for it in items:
        info = task_texts.get(it[0], {})
        choices = info.get("choices", [])
        row = {"item": it[0], "text": info.get("text", ""),
               "choices": " | ".join(choice_text(choices, i) for i in range(len(choices))),
               "correct": it[4] if GENERATION else choice_text(choices, it[1]),
               f"answer of {label}": answer_of(it, choices)}
        if GENERATION:
            del row["choices"]
            row[f"written by {label}"] = written_of(it)
        rows.append(row)
    right = sum(bool(it[3]) for it in items)
    st.markdown(f"##### All {len(rows)} answers of {C.md(label)} ({right} right)")
    if rows:
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=TEXT_COLUMNS)
        full_item_box(rows)


def full_item_box(rows: list[dict[str, Any]]) -> None:
    """One item in full (long texts and choices do not fit a table cell)."""
    with st.expander("Read one item in full", icon=":material/article:"):
        pick = st.selectbox("Item", [r["item"] for r in rows], key=f"items_full_{run_id}_{suite}_{task}")
        r = next(x for x in rows if x["item"] == pick)
        for k, v in r.items():
            st.markdown(f"**{C.md(k)}**: {C.md(v)}")


if len(labels) < 2:
    st.info(f"Only one finished cell for {C.md(suite)}/{C.md(task)}: there is nothing to compare it with; "
            "here are its answers.")
    answers_table(labels[0])
    st.stop()
a_def = labels.index(qp["a"]) if qp.get("a") in labels else 0
same_in_link = qp.get("b") in labels and qp.get("b") == labels[a_def]
if qp.get("b") in labels and not same_in_link:
    b_def = labels.index(qp["b"])
else:  # by default compare with another model (more to see), else with another variant
    other = [i for i, lab in enumerate(labels) if lab.split(":")[0] != labels[a_def].split(":")[0]]
    b_def = other[0] if other else (1 if a_def == 0 else 0)
c3, c4 = st.columns(2)
key_a, key_b = f"items_a_{run_id}_{suite}_{task}", f"items_b_{run_id}_{suite}_{task}"
a = c3.selectbox("Cell A (model:variant)", labels, index=a_def, key=key_a)
b = c4.selectbox("Cell B (model:variant)", labels, index=b_def, key=key_b)
if same_in_link and st.session_state.get("_items_said_same") != (a, qp.get("b")):
    st.info(f"The link asks for {C.md(qp.get('b'))} as both A and B; B is set to {C.md(b)} instead. Pick B "
            "yourself to change it.")
    st.session_state["_items_said_same"] = (a, qp.get("b"))
C.set_params(run=run_id, suite=suite, task=task, a=a, b=b)
if a == b:
    st.info(f"A and B are the same cell ({C.md(a)}): choose another B to compare. Meanwhile, here are all of "
            "its answers.")
    answers_table(a)
    st.stop()

(ma, va), (mb, vb) = a.split(":", 1), b.split(":", 1)
items_a = cell_items(run_id, C.store_path(), version, suite, task, ma, va, GENERATION)
items_b = cell_items(run_id, C.store_path(), version, suite, task, mb, vb, GENERATION)
by_b = {i[0]: i for i in items_b}
pairs = [(x, by_b[x[0]]) for x in items_a if x[0] in by_b]
if not pairs:
    st.warning("These two cells have no items in common (were they run with different item limits?).")
    st.stop()
if len(pairs) < max(len(items_a), len(items_b)):
    st.caption(f"Comparing the {len(pairs)} items both cells scored.")

from evaluator.stats import mcnemar  # noqa: E402 - light, pure

correct_a = [bool(x[3]) for x, _ in pairs]
correct_b = [bool(y[3]) for _, y in pairs]
test = mcnemar(correct_a, correct_b)
n = len(pairs)
acc_a, acc_b = sum(correct_a) / n, sum(correct_b) / n
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"Accuracy A ({C.md(a)})", f"{acc_a:.1%}")
diff = round((acc_b - acc_a) * 100, 1)
m2.metric(f"Accuracy B ({C.md(b)})", f"{acc_b:.1%}", delta=f"{diff:+.1f} pts" if diff else "same as A",
          delta_color="normal" if diff else "off")
m3.metric("Only A right / only B right", f"{test['a_only']} / {test['b_only']}")
m4.metric("McNemar p-value", f"{test['p_value']:.3g}", help="Exact two-sided McNemar test on the items where "
          "exactly one of the two is right: the chance of a split at least this uneven if A and B were equally "
          "accurate.")
if test["a_only"] + test["b_only"] == 0:
    st.info(f"McNemar p-value = {test['p_value']:.3g}: the two cells are right on exactly the same items.")
elif test["p_value"] < 0.05:
    better = a if test["a_only"] > test["b_only"] else b
    st.success(f"McNemar p-value = {test['p_value']:.3g} (< 0.05): over these {n} items, {C.md(better)} is "
               "significantly more accurate.")
else:
    st.info(f"McNemar p-value = {test['p_value']:.3g} (≥ 0.05): over these {n} items the difference between the "
            "two could be chance. More items would give a sharper answer.")

views = {"differ": "Answers differ", "split": "Exactly one is right (what McNemar counts)", "all": "All items"}
show = st.segmented_control("Show items", list(views), format_func=views.get, default="differ",
                            key="items_show") or "differ"
only_split = show == "split"
rows = []
for xa, xb in pairs:
    if show != "all" and same_answer(xa, xb):
        continue
    if only_split and bool(xa[3]) == bool(xb[3]):
        continue
    info = task_texts.get(xa[0], {})
    choices = info.get("choices", [])
    row = {"item": xa[0], "text": info.get("text", ""),
           "choices": " | ".join(choice_text(choices, i) for i in range(len(choices))),
           "correct": xa[4] if GENERATION else choice_text(choices, xa[1]),
           f"A: {a}": answer_of(xa, choices), f"B: {b}": answer_of(xb, choices)}
    if GENERATION:
        del row["choices"]
        row[f"A wrote ({a})"], row[f"B wrote ({b})"] = written_of(xa), written_of(xb)
    rows.append(row)
if show == "all":
    st.markdown(f"##### All {n} items, with both answers")
else:
    st.markdown(f"##### {len(rows)} item(s) where the answers differ" + (" and one is right" if only_split else "")
                + f" (of {n})")
if rows:
    import pandas as pd

    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch",
                 column_config={**TEXT_COLUMNS, f"A: {a}": st.column_config.TextColumn(width="medium"),
                                f"B: {b}": st.column_config.TextColumn(width="medium")})
    full_item_box(rows)
else:
    st.info("The two cells give the same answer on every item. Choose **All items** to see them.")
st.divider()
C.download_buttons(run_id, key="items_dl")
C.permalink("items", run=run_id, suite=suite, task=task, a=a, b=b)
