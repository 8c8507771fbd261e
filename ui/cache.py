"""``st.cache_data`` wrappers around segloss_core, keyed on ``Case.digest()`` and the parameters.

Arguments starting with ``_`` are not hashed (the case arrays); the digest and a canonical JSON
of the parameters are the key. Values are pickled copies, so no session can change another's
results (no shared mutable cache).
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from segloss_core import Case
from segloss_core import playground as pg

MAX_ENTRIES = 64


def params_key(params: dict | None) -> str:
    """Canonical JSON of a ``{loss: {param: value}}`` dict: the cache key part for parameters."""
    return json.dumps(params or {}, sort_keys=True, default=str)


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def _loss_values(digest: str, pkey: str, _case: Case, _params: dict) -> dict[str, Any]:
    return pg.loss_values(_case, _params)


def loss_values(case: Case, params: dict | None = None) -> dict[str, Any]:
    """Every registered loss on ``case``: ``{name: value or "n/a: reason"}`` (cached)."""
    return _loss_values(case.digest(), params_key(params), case, params or {})


@st.cache_data(max_entries=16, show_spinner=False)
def _per_class(digest: str, pkey: str, _case: Case, _params: dict) -> dict[str, dict[str, Any]]:
    return pg.per_class_values(_case, _params)


def per_class_values(case: Case, params: dict | None = None) -> dict[str, dict[str, Any]]:
    """One-vs-rest loss values per class (cached)."""
    return _per_class(case.digest(), params_key(params), case, params or {})


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def _metrics(digest: str, _case: Case) -> dict[str, Any]:
    from segloss_core import metrics

    return metrics(_case.hard_prediction, _case.gt, spacing=_case.spacing)


def metrics(case: Case) -> dict[str, Any]:
    """``segloss_core.metrics`` of the arg-max prediction against the ground truth (cached)."""
    return _metrics(case.digest(), case)


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def _images(digest: str, _case: Case) -> dict:
    return pg.case_images(_case)


def case_images(case: Case) -> dict:
    """RGB images of the ground truth, prediction and overlay (cached)."""
    return _images(case.digest(), case)


@st.cache_data(max_entries=MAX_ENTRIES, show_spinner=False)
def preset_case(name: str, size: int, preset_json: str, prediction_json: str, seed: int) -> Case:
    """``segloss_core.presets.make_case`` keyed on its (JSON-encoded) arguments."""
    from segloss_core.presets import make_case

    return make_case(name, size=size, prediction=json.loads(prediction_json), seed=seed,
                     **json.loads(preset_json))
