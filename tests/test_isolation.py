"""Test isolation: a test that reads a store sees only what it was given, whatever ran before it."""

from __future__ import annotations

from pathlib import Path

from evaluator.store import Store


def test_small_store_holds_only_small_run_even_after_others_write_to_the_shared_store(small_run, small_store):
    shared = Store(small_run.store_path)
    other = shared.create_run({"suites": ["finance"]}, 0, {}, {})  # as the CLI tests do, re-running into it
    shared.update_run(other, status="finished")
    try:
        assert Store(small_store).list_runs()[0]["run_id"] == small_run.run_id
        assert [r["run_id"] for r in Store(small_store).list_runs()] == [small_run.run_id]
        ok = [c for c in small_run.cells if c.status == "ok"]
        assert len(Store(small_store).cells(small_run.run_id)) == len(small_run.cells) and ok
    finally:
        shared.delete_run(other)


def test_each_test_gets_its_own_copy(small_run, small_store, tmp_path):
    assert small_store.parent == tmp_path and small_store.resolve() != Path(small_run.store_path).resolve()
    Store(small_store).delete_run(small_run.run_id)  # harmless: the next test's copy is fresh
    assert Store(small_store).list_runs() == []
    assert small_run.run_id in [r["run_id"] for r in Store(small_run.store_path).list_runs()]
