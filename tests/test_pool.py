"""The pool of loaded models an adaptive run keeps between rounds (evaluator/pool.py)."""

from __future__ import annotations

import pytest

from evaluator.pool import Loaded, ModelPool, meminfo_mb


class _Model:
    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def close(self) -> None:
        self.log.append(self.name)


def _entry(log: list[str], name: str) -> Loaded:
    return Loaded(name, _Model(log, name), 1.0)


def test_room_is_made_by_freeing_the_model_used_longest_ago_until_the_load_fits():
    closed: list[str] = []
    free = {"mb": 3000.0}
    pool = ModelPool(free=lambda: free["mb"], total=lambda: 16000.0, reserve_mb=500)
    for name in ("a", "b", "c"):
        pool.put(_entry(closed, name))
    pool.record_need("d", 2000)
    assert pool.make_room("d") == 0 and closed == []  # 3000 >= 2000 + 500: nothing to free
    pool.record_need("d", 4000)  # (a need only grows)
    pool.record_need("d", 1000)
    assert pool.need_mb("d") == 4000

    def on_close(name: str) -> None:
        closed.append(name)
        free["mb"] += 1000  # each model freed gives 1000 MiB back

    for e in pool._held.values():
        e.model.close = lambda n=e.key: on_close(n)
    assert pool.make_room("d") == 2 and closed == ["a", "b"]  # 5000 >= 4500 after two
    assert pool.keys == ["c"] and pool.evictions == 2


def test_a_first_load_asks_for_a_share_of_the_machine_and_unknown_free_memory_frees_everything():
    closed: list[str] = []
    pool = ModelPool(free=lambda: 9000.0, total=lambda: 16000.0, reserve_mb=1000)
    pool.put(_entry(closed, "a"))
    assert pool.need_mb("new") == 8000  # half the machine
    assert pool.make_room("new") == 0  # 9000 >= 8000 + 1000
    pool = ModelPool(free=lambda: 8999.0, total=lambda: 16000.0, reserve_mb=1000)
    pool.put(_entry(closed, "a"))
    assert pool.make_room("new") == 1 and closed == ["a"]
    blind = ModelPool(free=lambda: None, total=lambda: None)
    blind.put(_entry(closed, "b"))
    blind.put(_entry(closed, "c"))
    assert blind.need_mb("x") is None
    assert blind.make_room("x") == 2 and closed == ["a", "b", "c"] and len(blind) == 0


def test_take_hands_back_the_model_and_put_makes_it_the_most_recent():
    closed: list[str] = []
    pool = ModelPool(free=lambda: 0.0, total=lambda: 1.0)
    a, b = _entry(closed, "a"), _entry(closed, "b")
    pool.put(a)
    pool.put(b)
    assert pool.take("a") is a and pool.keys == ["b"] and pool.hits == 1
    assert pool.take("a") is None and pool.hits == 1
    pool.put(a)
    assert pool.keys == ["b", "a"]
    pool.put(_entry(closed, "a"))  # a second copy replaces the first, which is closed
    assert pool.keys == ["b", "a"] and closed == ["a"]


def test_max_models_drop_and_release_close_what_they_free():
    closed: list[str] = []
    why: list[str] = []
    pool = ModelPool(max_models=2, free=lambda: 1e9, total=lambda: 1e9,
                     on_free=lambda e, reason: why.append(f"{e.key}: {reason}"))
    for name in ("a", "b", "c"):
        pool.put(_entry(closed, name))
    assert pool.keys == ["b", "c"] and closed == ["a"] and "at most 2 models" in why[0]
    assert pool.drop("b", "stopped") and not pool.drop("b") and closed == ["a", "b"]
    assert why[1] == "b: stopped"
    pool.release()
    assert closed == ["a", "b", "c"] and len(pool) == 0
    with pytest.raises(ValueError, match="at least 1"):
        ModelPool(max_models=0)


def test_meminfo_is_read_from_the_kernel_file_and_none_when_it_cannot_be(tmp_path):
    f = tmp_path / "meminfo"
    f.write_text("MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   12288000 kB\n")
    assert meminfo_mb("MemTotal", str(f)) == 24000.0
    assert meminfo_mb("MemAvailable", str(f)) == 12000.0
    assert meminfo_mb("SwapTotal", str(f)) is None
    assert meminfo_mb("MemTotal", str(tmp_path / "absent")) is None
    f.write_text("MemTotal: lots\n")
    assert meminfo_mb("MemTotal", str(f)) is None


def test_a_cell_is_charged_for_its_own_memory_not_the_models_the_pool_holds(monkeypatch):
    """The runner tells the meter what the pool holds for other models while a cell runs, at most the
    process's resident memory less the cell's own model (pages of a held model may have been reclaimed)."""
    import evaluator.runner as runner

    closed: list[str] = []
    pool = ModelPool(free=lambda: 1e9, total=lambda: 1e9)
    mine = Loaded("mine", _Model(closed, "mine"), 1.0, resident_mb=500.0)
    assert runner._held_by_others(pool, mine) == 0.0 and runner._held_by_others(None, mine) == 0.0
    pool.put(Loaded("a", _Model(closed, "a"), 1.0, resident_mb=3000.0))
    pool.put(Loaded("b", _Model(closed, "b"), 1.0, resident_mb=1000.0))
    assert pool.held_mb() == 4000.0
    monkeypatch.setattr(runner, "rss_mb", lambda: 6000.0)
    assert runner._held_by_others(pool, mine) == 4000.0
    monkeypatch.setattr(runner, "rss_mb", lambda: 2500.0)  # reclaimed: the cell keeps its own 500
    assert runner._held_by_others(pool, mine) == 2000.0
    monkeypatch.setattr(runner, "rss_mb", lambda: None)
    assert runner._held_by_others(pool, mine) == 4000.0


def test_each_model_freed_is_told_why_in_the_order_freed():
    why: list[tuple[str, str]] = []
    closed: list[str] = []
    free = {"mb": 0.0}
    pool = ModelPool(free=lambda: free["mb"], total=lambda: 8000.0, reserve_mb=500,
                     on_free=lambda e, reason: why.append((e.key, reason)))
    pool.put(_entry(closed, "a"))
    pool.put(_entry(closed, "a"))  # a second copy of a held model
    assert why == [("a", "replaced")]
    pool.put(_entry(closed, "b"))
    pool.record_need("d", 4000)
    free["mb"] = 1000.0
    assert pool.make_room("d") == 2
    assert why[1:] == [("a", "1000 MiB free, loading d needs about 4000 + 500 MiB"),
                       ("b", "1000 MiB free, loading d needs about 4000 + 500 MiB")]
    blind = ModelPool(free=lambda: None, total=lambda: 8000.0, on_free=lambda e, reason: why.append((e.key, reason)))
    blind.put(_entry(closed, "c"))
    blind.make_room("x")
    unknown_need = ModelPool(free=lambda: 9e9, total=lambda: None,
                             on_free=lambda e, reason: why.append((e.key, reason)))
    unknown_need.put(_entry(closed, "e"))
    unknown_need.make_room("never-loaded")  # no measured need and no machine size: free it
    assert why[3:] == [("c", "free memory unknown"), ("e", "free memory unknown")]
    one = ModelPool(max_models=1, free=lambda: 9e9, total=lambda: 9e9,
                    on_free=lambda e, reason: why.append((e.key, reason)))
    one.put(_entry(closed, "f"))
    one.put(_entry(closed, "g"))
    assert why[-1] == ("f", "the pool holds at most 1 model")
    rest = ModelPool(free=lambda: 9e9, total=lambda: 9e9, on_free=lambda e, reason: why.append((e.key, reason)))
    for name in ("h", "i", "j"):
        rest.put(_entry(closed, name))
    rest.drop("i")
    rest.release()
    assert why[-3:] == [("i", "no longer needed"), ("h", "the run is over"), ("j", "the run is over")]


def test_a_load_need_is_the_largest_measured_and_a_bad_reading_is_ignored():
    pool = ModelPool(free=lambda: 0.0, total=lambda: 10000.0)
    pool.record_need("z", 0)  # a load that grew nothing needs nothing
    pool.record_need("h", 0.5)
    pool.record_need("h", 0.25)
    pool.record_need("n", None)  # unreadable
    pool.record_need("m", -3.0)  # the process shrank during the load
    assert (pool.need_mb("z"), pool.need_mb("h")) == (0, 0.5)
    assert pool.need_mb("n") == pool.need_mb("m") == 5000.0  # still unknown: half the machine
    closed: list[str] = []
    tiny = ModelPool(free=lambda: 600.0, total=lambda: 10000.0, reserve_mb=500)
    tiny.put(_entry(closed, "a"))
    tiny.record_need("z", 0)
    assert tiny.make_room("z") == 0 and closed == []  # 600 >= 0 + 500
    assert _entry(closed, "q").close() is None
    e = _entry(closed, "r")
    e.close()
    assert e.model is None and closed[-1] == "r"
    counted = ModelPool(free=lambda: 1e9, total=lambda: 1e9)
    counted.put(_entry(closed, "s"))
    s = counted.take("s")
    counted.put(s)
    counted.take("s")
    assert counted.hits == 2
    with pytest.raises(ValueError, match=r"^max_models must be at least 1 \(or None: as memory allows\)$"):
        ModelPool(max_models=-1)


def test_the_default_pool_reads_this_machines_memory():
    """On Linux the pool asks the kernel (MemAvailable, MemTotal); a model stays held when there is room."""
    import evaluator.pool as pool_mod

    fields = {}
    with open("/proc/meminfo") as fh:
        for line in fh:
            name, rest = line.split(":", 1)
            fields[name] = int(rest.split()[0]) / 1024.0
    assert meminfo_mb("MemTotal") == fields["MemTotal"] == pool_mod.total_mb()
    avail = pool_mod.available_mb()
    assert avail is not None and 0 < avail <= fields["MemTotal"]
    pool = ModelPool()
    assert pool.need_mb("never-loaded") == pytest.approx(fields["MemTotal"] / 2)
    closed: list[str] = []
    pool.put(_entry(closed, "a"))
    pool.record_need("small", 1.0)
    if avail < pool.reserve_mb + 2:
        pytest.skip("this machine has less than 1 GiB free")
    assert pool.make_room("small") == 0 and closed == []

