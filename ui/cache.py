"""One caching helper for the pages: declare *what* is computed, the key follows from the arguments' types.

Usage::

    from ui.cache import cached, page_cache

    maps = cached(gradients.gradient_maps)(case, names, wrt=wrt, params=params)

    @page_cache(max_entries=16)
    def _landscape(case, settings, params, progress=None):  # a thin wrapper of a core function
        return landscape(case, **settings, params=params, progress=progress)

Keys (:func:`key_of`) are built by type, never by hand: a :class:`~segloss_core.Case` by its content
digest (plus its name and class names), mappings sorted by key, sequences in order, dataclasses
(e.g. frozen settings) field by field, numpy arrays and torch tensors by a digest of their dtype,
shape and bytes, scalars by type and ``repr``. Any other type is refused with a ``TypeError``, so a
key can never silently depend on an object's identity.

Behaviour:

- **Single flight.** Concurrent calls with one key (sessions of one server are threads of one
  process) compute once: the first caller computes, the others wait and receive the same result;
  different keys compute in parallel. A waiting caller still stops or reruns when its session asks
  to (Streamlit's yield check, as ``st.cache_data``'s own compute lock does).
- **Copies.** The value is stored pickled; every hit unpickles its own copy (as ``st.cache_data``),
  so no session can change another's result.
- **Errors are not cached.** A computation that raises leaves no entry: callers waiting on it get the
  same exception, the next call computes again. A Streamlit control-flow exception (a rerun or stop
  of the computing session) is not passed on: a waiting caller then computes itself.
- **Compute slots.** At most :data:`COMPUTE_SLOTS` computations run at once in the process (env
  ``SEGLOSS_COMPUTE_SLOTS``, default the number of cores); further ones wait their turn, in order.
  The sessions' script runs are threads of one interpreter: twenty analyses interleaved by the GIL
  all finish late and cost about half as much CPU again in switching, while a few at a time finish
  early and leave the rest queued behind them (``benchmarks/README.md``, 20 sessions). A nested
  cached call runs in its caller's slot, and a caller waiting on another session's computation
  lends its slot meanwhile, so slots cannot deadlock.
- **Bounded.** Least recently used entries go first, per function (``max_entries``, optional
  ``ttl`` in seconds) and for the whole process (:data:`MAX_BYTES` of pickled values).
- **Progress outside.** Nothing is drawn inside a cached function. A parameter named ``progress``
  (and every name in ``ignore``) is not part of the key; the helper passes a relay in its place so
  that callers waiting on the same computation see its progress too. Draw it with
  :func:`progress_bar`, which shows nothing on a cache hit.
- ``st.cache_data.clear()`` (tests, the app menu's "Clear caches") also empties these caches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import hashlib
import inspect
import logging
import os
import pickle
import threading
import time
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from segloss_core import Case

log = logging.getLogger("segloss.ui.cache")

def env_number(name: str, default: float) -> float:
    """A non-negative number from the environment; an unset, bad or negative value gives ``default``
    (logged in one line, never a traceback at start-up)."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        log.warning("%s=%r is not a non-negative number; using %g", name, raw, default)
        return default
    return value


MAX_BYTES = int(env_number("SEGLOSS_CACHE_MB", 512) * 2**20)
"""Pickled bytes kept for all cached functions together (env ``SEGLOSS_CACHE_MB``)."""
DEFAULT_MAX_ENTRIES = 32
WAIT_POLL_S = 0.2  # how often a waiting caller relays the computing caller's progress
_now = time.monotonic  # the clock of the ttl


# ----------------------------------------------------------------------------------------- keys


_digests: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_digests_lock = threading.Lock()


def case_digest(case: Case) -> str:
    """``case.digest()``, computed once per ``Case`` object (a case is immutable once built)."""
    with _digests_lock:
        found = _digests.get(case)
    if found is None:
        found = case.digest()
        with _digests_lock:
            _digests[case] = found
    return found


def fingerprint(case: Case) -> str:
    """The first 8 hex digits of the case digest: short enough for a caption, enough to tell cases apart."""
    return case_digest(case)[:8]


def _feed_array(h, a: np.ndarray, tag: bytes) -> None:
    if a.dtype.hasobject:
        raise TypeError("arrays of Python objects cannot be part of a cache key")
    h.update(tag + a.dtype.str.encode() + repr(a.shape).encode())
    h.update(hashlib.blake2b(np.ascontiguousarray(a).data, digest_size=16).digest())


def _feed(h, obj: Any) -> None:  # noqa: C901, PLR0912 - one branch per supported type
    """Write a type-tagged, canonical encoding of ``obj`` into the hash ``h``."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(f"<{type(obj).__name__}:{len(repr(obj))}>".encode() + repr(obj).encode())
    elif isinstance(obj, Case):
        h.update(b"<Case>" + case_digest(obj).encode())
        _feed(h, (obj.name, obj.class_names))
    elif isinstance(obj, np.ndarray):
        _feed_array(h, obj, b"<ndarray>")
    elif isinstance(obj, np.generic):
        _feed(h, obj.item())
        h.update(obj.dtype.str.encode())
    elif type(obj).__module__ == "torch" and type(obj).__name__ in ("Tensor", "Parameter"):
        _feed_array(h, obj.detach().cpu().numpy(), b"<tensor>")
    elif isinstance(obj, np.dtype) or (type(obj).__module__ == "torch" and type(obj).__name__ in ("dtype", "device")):
        h.update(f"<{type(obj).__name__}:{obj}>".encode())
    elif isinstance(obj, enum.Enum):
        h.update(f"<enum {type(obj).__qualname__}.{obj.name}>".encode())
    elif isinstance(obj, Mapping):
        items = []
        for k, v in obj.items():
            kh = hashlib.blake2b(digest_size=16)
            _feed(kh, k)
            items.append((kh.digest(), v))
        h.update(f"<map:{len(items)}>".encode())
        for kd, v in sorted(items, key=lambda kv: kv[0]):
            h.update(kd)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"<{'list' if isinstance(obj, list) else 'tuple'}:{len(obj)}>".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, (set, frozenset)):
        parts = sorted(key_of(v) for v in obj)
        h.update(f"<set:{len(parts)}>".encode() + "".join(parts).encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        h.update(f"<{type(obj).__module__}.{type(obj).__qualname__}:{len(fields)}>".encode())
        for f in fields:
            h.update(f.name.encode())
            _feed(h, getattr(obj, f.name))
    else:
        raise TypeError(f"cannot build a cache key from a {type(obj).__module__}.{type(obj).__qualname__}; "
                        "pass plain values, arrays, dataclasses or a Case")


def key_of(*parts: Any) -> str:
    """The cache key of ``parts`` (hex), built from their types and contents (see the module docstring)."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- store


@dataclasses.dataclass
class _Entry:
    blob: bytes
    expires: float  # _now() deadline, inf without a ttl


class _Flight:
    """One computation in progress; callers with the same key wait on ``done``."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.owner = threading.get_ident()
        self.blob: bytes | None = None
        self.error: BaseException | None = None
        self.progress: tuple | None = None  # the latest (args, kwargs) the computation reported


class _Store:
    """Every entry of every cached function: one LRU order, one byte budget, the flights in progress."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self.counts: dict[str, int] = {}
        self.nbytes = 0
        self.flights: dict[tuple[str, str], _Flight] = {}
        self.generation: str | None = None

    def get(self, k: tuple[str, str]) -> bytes | None:
        entry = self.entries.get(k)
        if entry is None:
            return None
        if entry.expires < _now():
            self._drop(k)
            return None
        self.entries.move_to_end(k)
        return entry.blob

    def put(self, k: tuple[str, str], blob: bytes, max_entries: int, ttl: float | None, max_bytes: int) -> None:
        if len(blob) > max_bytes // 4:
            return  # one value may not push out everything else
        if k in self.entries:
            self._drop(k)
        self.entries[k] = _Entry(blob, _now() + ttl if ttl else float("inf"))
        self.counts[k[0]] = self.counts.get(k[0], 0) + 1
        self.nbytes += len(blob)
        if self.counts[k[0]] > max_entries:
            self._drop(next(e for e in self.entries if e[0] == k[0]))
        while self.nbytes > max_bytes:
            self._drop(next(iter(self.entries)))

    def _drop(self, k: tuple[str, str]) -> None:
        entry = self.entries.pop(k)
        self.counts[k[0]] -= 1
        self.nbytes -= len(entry.blob)

    def clear(self, fid: str | None = None) -> None:
        with self.lock:
            for k in [k for k in self.entries if fid is None or k[0] == fid]:
                self._drop(k)


_STORE = _Store()


@st.cache_data(show_spinner=False)
def _streamlit_generation() -> str:
    """A new value after every ``st.cache_data.clear()``: these caches follow Streamlit's."""
    return uuid.uuid4().hex


def _follow_streamlit_clear() -> None:
    gen = _streamlit_generation()
    if gen != _STORE.generation:
        _STORE.clear()
        _STORE.generation = gen


def clear_all() -> None:
    """Empty every cached function (flights in progress finish and are stored)."""
    _STORE.clear()


# ----------------------------------------------------------------------------------------- slots

COMPUTE_SLOTS = max(1, int(env_number("SEGLOSS_COMPUTE_SLOTS", 0)) or (os.cpu_count() or 1))
"""Cached computations running at once in this process (env ``SEGLOSS_COMPUTE_SLOTS``; 0 = cores)."""
_slots = threading.Semaphore(COMPUTE_SLOTS)
_held = threading.local()  # .depth: this thread's nesting of computations inside its slot


@contextlib.contextmanager
def _compute_slot(stop_check: Callable[[], None] | None):
    """Hold one of the process's compute slots for the block (nested blocks share the outer one);
    ``stop_check`` runs while waiting, so that a session can stop or rerun meanwhile."""
    depth = getattr(_held, "depth", 0)
    if depth == 0:
        while not _slots.acquire(timeout=WAIT_POLL_S):
            if stop_check is not None:
                stop_check()
    _held.depth = depth + 1
    try:
        yield
    finally:
        _held.depth = depth
        if depth == 0:
            _slots.release()


@contextlib.contextmanager
def _slot_lent():
    """While this thread waits on another session's computation, its slot (if any) is free for others."""
    depth = getattr(_held, "depth", 0)
    if depth == 0:
        yield
        return
    _held.depth = 0
    _slots.release()
    try:
        yield
    finally:
        _slots.acquire()
        _held.depth = depth


# ----------------------------------------------------------------------------------------- functions


def _function_id(func: Callable) -> str:
    """The same for the same function across page reruns (a page script defines its functions anew on
    every run), different when its code changes."""
    code = getattr(func, "__code__", None)
    if code is None or not hasattr(func, "__qualname__"):
        raise TypeError(f"cached() takes a function defined with def or lambda, not {type(func).__name__}")
    consts = [c for c in code.co_consts if isinstance(c, (str, int, float, bytes, tuple, type(None)))]
    body = hashlib.blake2b(code.co_code + repr((code.co_names, consts)).encode(), digest_size=8).hexdigest()
    return f"{func.__module__}:{func.__qualname__}@{code.co_filename}:{body}"


def _pickled(value: Any, name: str) -> bytes | None:
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - an unpicklable value is returned, not cached
        log.warning("%s returned a value that cannot be pickled; not cached", name, exc_info=True)
        return None


def _land(k: tuple[str, str], flight: _Flight, blob: bytes | None = None, fn: CachedFunction | None = None) -> None:
    """End a flight: store its value (if any) and remove the flight in one step, then wake the waiters."""
    with _STORE.lock:
        if blob is not None and fn is not None:
            _STORE.put(k, blob, fn.max_entries, fn.ttl, MAX_BYTES)
        _STORE.flights.pop(k, None)
    flight.done.set()


class CachedFunction:
    """``func`` with a typed, single-flight, bounded cache; call it like ``func``."""

    def __init__(self, func: Callable, *, max_entries: int, ttl: float | None, ignore: tuple[str, ...]) -> None:
        self.func = func
        self.fid = _function_id(func)
        self.max_entries = max_entries
        self.ttl = ttl
        self.ignore = frozenset(ignore)
        self.signature = inspect.signature(func)
        self.relays_progress = "progress" in self.signature.parameters
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "cached")

    def _bind(self, args: tuple, kwargs: dict) -> inspect.BoundArguments:
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    def _key(self, bound: inspect.BoundArguments) -> str:
        parts = []
        for name, value in bound.arguments.items():
            if name in self.ignore or name == "progress":
                continue
            try:
                parts.append((name, key_of(value)))
            except TypeError as err:
                raise TypeError(f"{self.__name__}: argument {name!r}: {err}") from None
        return key_of(tuple(parts))

    def key(self, *args: Any, **kwargs: Any) -> str:
        """The cache key of this call (arguments bound by name, defaults applied, ignored names left out)."""
        return self._key(self._bind(args, kwargs))

    def ensure(self, *args: Any, **kwargs: Any) -> None:
        """Compute and store the value for these arguments if it is missing; a hit costs no copy."""
        self._call(args, kwargs, want=False)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(args, kwargs, want=True)

    def _call(self, args: tuple, kwargs: dict, *, want: bool) -> Any:
        _follow_streamlit_clear()
        bound = self._bind(args, kwargs)
        k = (self.fid, self._key(bound))
        progress = bound.arguments.get("progress") if self.relays_progress else None
        while True:
            with _STORE.lock:
                blob = _STORE.get(k)
                if blob is not None:
                    return pickle.loads(blob) if want else None
                flight = _STORE.flights.get(k)
                leader = flight is None or flight.owner == threading.get_ident()
                if flight is None:
                    flight = _STORE.flights[k] = _Flight()
            if leader:
                return self._compute(k, flight, bound, progress)
            with _slot_lent():
                finished = self._wait(flight, progress)
            if finished:
                if flight.error is not None:
                    raise flight.error
                return pickle.loads(flight.blob) if want else None
            # the computing caller was stopped (a rerun or stop of its session): compute here instead

    def _compute(self, k: tuple[str, str], flight: _Flight, bound: inspect.BoundArguments, progress) -> Any:
        if self.relays_progress:
            def relay(*a: Any, **kw: Any) -> None:
                flight.progress = (a, kw)
                if progress is not None:
                    progress(*a, **kw)

            bound.arguments["progress"] = relay
        ctx = get_script_run_ctx(suppress_warning=True)
        try:
            with _compute_slot(getattr(ctx, "yield_check", None)):
                with _functions_lock:
                    _runs[self.fid] = _runs.get(self.fid, 0) + 1
                value = self.func(*bound.args, **bound.kwargs)
            blob = _pickled(value, self.__name__)
        except Exception as err:
            flight.error = err  # waiters get the same exception; nothing is stored
            _land(k, flight)
            raise
        except BaseException:
            _land(k, flight)  # a rerun / stop of this session: waiters compute themselves
            raise
        flight.blob = blob
        _land(k, flight, blob, self)
        return value

    def _wait(self, flight: _Flight, progress) -> bool:
        """Wait for another caller's computation; ``True`` when it ended with a value or an exception."""
        shown = None
        ctx = get_script_run_ctx(suppress_warning=True)
        stop_check = getattr(ctx, "yield_check", None)  # lets this session stop or rerun while it waits
        while not flight.done.wait(WAIT_POLL_S):
            if stop_check is not None:
                stop_check()
            if progress is not None and flight.progress is not None and flight.progress is not shown:
                shown = flight.progress
                progress(*shown[0], **shown[1])
        return flight.blob is not None or flight.error is not None

    @property
    def computations(self) -> int:
        """How many times this function ran (a miss), over every definition of it (tests, benchmarks)."""
        return _runs.get(self.fid, 0)

    def clear(self) -> None:
        _STORE.clear(self.fid)

    def cached_keys(self) -> int:
        with _STORE.lock:
            return _STORE.counts.get(self.fid, 0)


_functions: dict[str, CachedFunction] = {}
_runs: dict[str, int] = {}
_functions_lock = threading.Lock()


def cached(func: Callable | None = None, *, max_entries: int = DEFAULT_MAX_ENTRIES, ttl: float | None = None,
           ignore: tuple[str, ...] = ()):
    """``cached(f)`` or ``@cached(max_entries=8)``: ``f`` with the cache described in the module docstring.

    The same function (same module, name and code) gets the same cache wherever ``cached`` is called,
    so ``cached(core.f)(...)`` may be written inline in a page. ``ignore``: parameter names left out of
    the key (``progress`` always is).
    """
    if func is None:
        return lambda f: cached(f, max_entries=max_entries, ttl=ttl, ignore=ignore)
    fid = _function_id(func)
    with _functions_lock:
        found = _functions.get(fid)
        if found is None or found.func is not func:
            found = _functions[fid] = CachedFunction(func, max_entries=max_entries, ttl=ttl, ignore=ignore)
        else:
            found.max_entries, found.ttl, found.ignore = max_entries, ttl, frozenset(ignore)
    return found


page_cache = cached
"""Decorator spelling of :func:`cached` for a page's thin wrappers: ``@page_cache(max_entries=16)``."""


@contextlib.contextmanager
def progress_bar(text: str):
    """``with progress_bar("Computing…") as tick: f(..., progress=tick)``: a bar drawn here, outside the
    cached function, from the first ``tick(fraction, message=None)`` on; nothing on a cache hit."""
    slot = st.empty()
    drawn = []

    def tick(fraction: float, message: str | None = None, *_: Any, **__: Any) -> None:
        drawn.append(True)
        label = f"{text} {message}" if message else text
        slot.progress(min(1.0, max(0.0, float(fraction))), text=label)

    try:
        yield tick
    finally:
        if drawn:
            slot.empty()


# ----------------------------------------------------------------------------------------- shared calls


def _metrics_of(case: Case) -> dict[str, Any]:
    from segloss_core.core import metrics

    return metrics(case.hard_prediction, case.gt, spacing=case.spacing)


def _preset(name: str, size: int, preset_params: dict, prediction: dict, seed: int) -> Case:
    from segloss_core.data.presets import make_case

    return make_case(name, size=size, prediction=dict(prediction), seed=seed, **preset_params)


def loss_values(case: Case, params: dict | None = None, names=None) -> dict[str, Any]:
    """Every registered loss (or ``names``) on ``case``: ``{name: value or "n/a: reason"}`` (cached)."""
    from segloss_core.analyses import playground as pg

    if names is None:
        return cached(pg.loss_values, max_entries=64)(case, params or {})
    return cached(pg.loss_values, max_entries=64)(case, params or {}, tuple(names))


def per_class_values(case: Case, params: dict | None = None) -> dict[str, dict[str, Any]]:
    """One-vs-rest loss values per class (cached)."""
    from segloss_core.analyses import playground as pg

    return cached(pg.per_class_values, max_entries=16)(case, params or {})


def metrics(case: Case) -> dict[str, Any]:
    """``segloss_core.core.metrics`` of the arg-max prediction against the ground truth (cached)."""
    return cached(_metrics_of, max_entries=64)(case)


def case_images(case: Case) -> dict:
    """RGB images of the ground truth, prediction and overlay (cached)."""
    from segloss_core.analyses import playground as pg

    return cached(pg.case_images, max_entries=64)(case)


def preset_case(name: str, size: int, preset_params: dict, prediction: dict, seed: int) -> Case:
    """``segloss_core.data.presets.make_case`` for a preset, its parameters and prediction amounts (cached)."""
    return cached(_preset, max_entries=64)(name, int(size), preset_params, prediction, int(seed))
