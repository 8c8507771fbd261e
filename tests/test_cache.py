"""ui.cache: keys by type, single flight across threads, errors not cached, bounded size, progress
relayed to waiting callers, copies per caller; and the case fingerprint every page shows."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pytest
import torch

from segloss_core import Case
from ui import cache

DEADLINE_S = 60  # only a bound on waiting for threads, never a measured time


def _case(shift: int = 0, name: str = "disk") -> Case:
    yy, xx = np.mgrid[:32, :32]
    gt = ((yy - 16) ** 2 + (xx - 16 - shift) ** 2 <= 8**2).astype(np.int64)
    fg = np.where(gt > 0, 0.8, 0.1)
    return Case(gt, np.stack([1 - fg, fg]).astype(np.float32), name=name)


@dataclasses.dataclass(frozen=True)
class Settings:
    steps: int = 10
    losses: tuple[str, ...] = ("dice", "ce")
    params: dict = dataclasses.field(default_factory=dict)


@pytest.fixture(autouse=True)
def _empty():
    cache.clear_all()
    yield
    cache.clear_all()


# ----------------------------------------------------------------------------------------- keys


def test_equal_cases_hit_and_changed_content_misses():
    @cache.page_cache
    def total(case, params):
        return float(case.probs.sum()) + params.get("dice", {}).get("smooth", 0.0)

    a, b = _case(), _case()
    assert a is not b and a.gt is not b.gt
    first = total(a, {"dice": {"smooth": 1.0, "batch": True}})
    assert total(b, {"dice": {"batch": True, "smooth": 1.0}}) == first  # other objects, other key order
    assert total.computations == 1
    total(a, {"dice": {"smooth": 2.0, "batch": True}})  # a changed parameter
    total(_case(shift=1), {"dice": {"smooth": 1.0, "batch": True}})  # other pixels
    total(_case(name="other"), {"dice": {"smooth": 1.0, "batch": True}})  # other name
    assert total.computations == 4


def test_keys_follow_types_and_contents():
    k = cache.key_of
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert k(arr) == k(arr.copy())
    changed = arr.copy()
    changed[1, 2] = 7
    assert k(changed) != k(arr)
    assert k(arr) != k(arr.reshape(3, 2)) and k(arr) != k(arr.astype(np.float64))
    assert k(torch.from_numpy(arr)) == k(torch.from_numpy(arr.copy())) != k(arr)
    assert k(Settings(params={"a": 1, "b": 2})) == k(Settings(params={"b": 2, "a": 1}))
    assert k(Settings(steps=11)) != k(Settings())
    assert k(1) != k(1.0) != k(True) and k("1") != k(1)
    assert k([1, 2]) != k((1, 2)) and k((1, 2)) != k((2, 1))
    assert k({"a": (1, 2)}) != k({"a": (1, 3)}) and k(None) != k("None")
    assert k(np.float32(0.5)) != k(np.float64(0.5))
    with pytest.raises(TypeError, match="cannot build a cache key"):
        k(object())


def test_ignored_arguments_and_defaults():
    def f(x, scale=2, progress=None, label="a"):
        return x * scale

    g = cache.cached(f, ignore=("label",))
    assert g.key(3) == g.key(3, 2) == g.key(x=3, progress=print, label="b")
    assert g.key(3) != g.key(3, 3)


def test_the_same_function_gets_the_same_cache_and_values_are_copies():
    def table(case):
        return {"sum": float(case.gt.sum())}

    first = cache.cached(table)(_case())
    first["sum"] = -1.0  # a caller changing its copy changes no one else's
    again = cache.cached(table)(_case())
    assert again == {"sum": float(_case().gt.sum())}
    assert cache.cached(table).computations == 1


def test_a_page_rerun_defining_its_function_anew_keeps_the_cache():
    def define():  # what every run of a page script does
        @cache.page_cache(max_entries=4)
        def area(case):
            return int(case.gt.sum())

        return area

    first, second = define(), define()
    assert first is not second
    assert first(_case()) == second(_case())
    assert second.computations == 1


def test_functions_that_differ_only_in_what_they_call_get_their_own_caches():
    calls = [lambda x: len(x), lambda x: sum(x)]  # one qualname, one bytecode, other names
    assert cache.cached(calls[0])((1, 2)) == 2 and cache.cached(calls[1])((1, 2)) == 3
    with pytest.raises(TypeError, match="defined with def or lambda"):
        cache.cached(print)


# ----------------------------------------------------------------------------------------- single flight


def _wait_for(predicate, what: str):
    done = threading.Event()
    for _ in range(DEADLINE_S * 100):
        if predicate():
            return
        done.wait(0.01)
    pytest.fail(f"threads never reached: {what}")


@pytest.fixture
def waiting(monkeypatch):
    """How many callers are waiting on another caller's computation right now."""
    count = [0]
    original = cache.CachedFunction._wait

    def counted(self, flight, progress):
        count[0] += 1
        try:
            return original(self, flight, progress)
        finally:
            count[0] -= 1

    monkeypatch.setattr(cache.CachedFunction, "_wait", counted)
    return count


def _run_threads(n, target):
    results, errors = [None] * n, [None] * n

    def run(i):
        try:
            results[i] = target(i)
        except Exception as err:  # noqa: BLE001 - collected for the assertions
            errors[i] = err

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    return threads, results, errors


def test_concurrent_misses_for_one_key_compute_once(waiting):
    release = threading.Event()

    @cache.page_cache
    def slow(case, settings):
        release.wait(DEADLINE_S)
        return {"n": int(case.gt.sum()), "steps": settings.steps}

    threads, results, errors = _run_threads(8, lambda i: slow(_case(), Settings()))
    _wait_for(lambda: waiting[0] == 7, "7 callers waiting on the first")
    release.set()
    for t in threads:
        t.join(DEADLINE_S)
    assert errors == [None] * 8
    assert slow.computations == 1
    assert all(r == results[0] for r in results)
    assert len({id(r) for r in results}) == 8  # each caller its own copy


def _slots(monkeypatch, n: int) -> None:
    monkeypatch.setattr(cache, "_slots", threading.Semaphore(n))


def test_different_keys_compute_in_parallel(monkeypatch):
    _slots(monkeypatch, 2)
    both = threading.Barrier(2, timeout=DEADLINE_S)  # broken unless both run at the same time

    @cache.page_cache
    def meet(x):
        both.wait()
        return x

    threads, results, errors = _run_threads(2, meet)
    for t in threads:
        t.join(DEADLINE_S)
    assert errors == [None, None] and results == [0, 1]


def test_an_exception_reaches_every_waiter_and_is_not_cached(waiting):
    release = threading.Event()
    fail = [True]

    @cache.page_cache
    def flaky(x):
        release.wait(DEADLINE_S)
        if fail[0]:
            raise ValueError("bad input")
        return x + 1

    threads, results, errors = _run_threads(4, lambda i: flaky(1))
    _wait_for(lambda: waiting[0] == 3, "3 callers waiting on the first")
    release.set()
    for t in threads:
        t.join(DEADLINE_S)
    assert [type(e) for e in errors] == [ValueError] * 4 and flaky.computations == 1
    assert flaky.cached_keys() == 0
    fail[0] = False
    assert flaky(1) == 2 and flaky.computations == 2
    assert flaky(1) == 2 and flaky.computations == 2


class _Stopped(BaseException):
    """Stands for Streamlit's rerun / stop of the computing session (a BaseException)."""


def test_a_stopped_computation_lets_a_waiter_compute(waiting):
    release = threading.Event()

    @cache.page_cache(ignore=("stop",))  # the two calls below share a key
    def work(x, stop):
        release.wait(DEADLINE_S)
        if stop:
            raise _Stopped
        return x * 10

    stopped = []

    def first():
        try:
            work(2, True)
        except _Stopped:
            stopped.append(True)

    leader = threading.Thread(target=first)
    leader.start()
    _wait_for(lambda: cache._STORE.flights, "the first call in flight")
    threads, results, errors = _run_threads(1, lambda i: work(2, False))
    _wait_for(lambda: waiting[0] == 1, "the second call waiting")
    release.set()
    for t in [leader, *threads]:
        t.join(DEADLINE_S)
    assert stopped == [True] and errors == [None] and results == [20]
    assert work.computations == 2


def test_waiting_callers_see_the_progress_of_the_computation(waiting, monkeypatch):
    monkeypatch.setattr(cache, "WAIT_POLL_S", 0.01)
    release, reported = threading.Event(), threading.Event()

    @cache.page_cache
    def train(x, progress=None):
        progress(0.5, "half way")
        reported.set()
        release.wait(DEADLINE_S)
        return x

    seen = {0: [], 1: []}
    leader = threading.Thread(target=lambda: train(1, progress=lambda *a: seen[0].append(a)))
    leader.start()
    reported.wait(DEADLINE_S)
    threads, results, errors = _run_threads(1, lambda i: train(1, progress=lambda *a: seen[1].append(a)))
    _wait_for(lambda: seen[1], "the waiting caller relaying the progress")
    release.set()
    for t in [leader, *threads]:
        t.join(DEADLINE_S)
    assert seen == {0: [(0.5, "half way")], 1: [(0.5, "half way")]} and results == [1]
    assert train.computations == 1


# ----------------------------------------------------------------------------------------- bounds


def test_entries_per_function_are_bounded_least_recently_used_first():
    @cache.page_cache(max_entries=3)
    def square(x):
        return x * x

    for x in range(5):
        square(x)
    assert square.cached_keys() == 3 and square.computations == 5
    square(4)  # still there
    assert square.computations == 5
    square(0)  # evicted first
    assert square.computations == 6


def test_bytes_are_bounded(monkeypatch):
    monkeypatch.setattr(cache, "MAX_BYTES", 5 * 80_000)

    @cache.page_cache(max_entries=100)
    def block(i):
        return np.full(10_000, i, dtype=np.float64)  # 80 kB pickled

    for i in range(10):
        block(i)
    assert 1 <= block.cached_keys() <= 4
    assert cache._STORE.nbytes <= cache.MAX_BYTES


def test_a_ttl_expires_entries(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(cache, "_now", lambda: now[0])

    @cache.page_cache(ttl=60)
    def stamp(x):
        return x

    stamp(1)
    now[0] += 30
    stamp(1)
    assert stamp.computations == 1
    now[0] += 31
    stamp(1)
    assert stamp.computations == 2


def test_streamlit_clear_empties_these_caches():
    import streamlit as st

    @cache.page_cache
    def one(x):
        return x

    one(1)
    st.cache_data.clear()
    one(1)
    assert one.computations == 2


# ----------------------------------------------------------------------------------------- the app


def test_every_page_shows_the_case_fingerprint(app_test):
    at = app_test(query_params={"preset": "disk", "size": "64"})
    at.run()
    assert not at.exception

    def shown():
        return [c.value for c in at.sidebar.caption if c.value.startswith("case ")]

    digest = at.session_state["segloss_case"].digest()
    assert shown() == [f"case {digest[:8]}"]
    for page in ("pages/gradients.py", "pages/bias.py"):
        at.switch_page(page).run()
        assert not at.exception and shown() == [f"case {digest[:8]}"]
    other = app_test(query_params={"preset": "ring", "size": "64"})
    other.run()
    ring = other.session_state["segloss_case"].digest()
    assert ring != digest
    assert [c.value for c in other.sidebar.caption if c.value.startswith("case ")] == [f"case {ring[:8]}"]


# ----------------------------------------------------------------------------------------- slots


def test_no_more_computations_at_once_than_slots(monkeypatch):
    _slots(monkeypatch, 2)
    running, peak, lock = [0], [0], threading.Lock()
    go = threading.Event()

    @cache.page_cache
    def busy(x):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        go.wait(0.2)  # long enough for the other threads to pile up
        with lock:
            running[0] -= 1
        return x

    threads, results, errors = _run_threads(6, busy)
    for t in threads:
        t.join(DEADLINE_S)
    assert errors == [None] * 6 and sorted(results) == list(range(6))
    assert peak[0] == 2


def test_nested_calls_share_their_callers_slot(monkeypatch):
    _slots(monkeypatch, 1)

    @cache.page_cache
    def inner(x):
        return x + 1

    @cache.page_cache
    def outer(x):
        return inner(x) * 10

    done = []
    t = threading.Thread(target=lambda: done.append(outer(1)))
    t.start()
    t.join(DEADLINE_S)
    assert done == [20]


def test_a_caller_waiting_on_another_sessions_computation_lends_its_slot(monkeypatch):
    """One slot: A holds it and needs Y, whose computation B started and which waits for a slot."""
    _slots(monkeypatch, 1)
    a_in_slot, b_started = threading.Event(), threading.Event()

    @cache.page_cache
    def y(x):
        return x * 2

    @cache.page_cache
    def x_needing_y(x):
        a_in_slot.set()
        assert b_started.wait(DEADLINE_S)
        return y(x) + 1

    def session_b():
        assert a_in_slot.wait(DEADLINE_S)
        out.append(("b", y(5)))

    out: list = []
    b = threading.Thread(target=session_b)
    b.start()
    a = threading.Thread(target=lambda: out.append(("a", x_needing_y(5))))
    a.start()
    assert a_in_slot.wait(DEADLINE_S)
    while not any(f.owner == b.ident for f in cache._STORE.flights.values()) and b.is_alive():
        b.join(0.01)  # B leads Y's flight and now waits for the slot A holds
    b_started.set()
    a.join(DEADLINE_S)
    b.join(DEADLINE_S)
    assert not a.is_alive() and not b.is_alive(), "deadlock"
    assert sorted(out) == [("a", 11), ("b", 10)]


@pytest.mark.parametrize("raw,want", [(None, 7.0), ("3", 3.0), ("0.5", 0.5), ("abc", 7.0), ("-2", 7.0), ("nan", 7.0)])
def test_settings_from_the_environment_fall_back_on_bad_values(monkeypatch, raw, want):
    if raw is None:
        monkeypatch.delenv("SEGLOSS_TEST_NUMBER", raising=False)
    else:
        monkeypatch.setenv("SEGLOSS_TEST_NUMBER", raw)
    assert cache.env_number("SEGLOSS_TEST_NUMBER", 7.0) == want
