"""Every core for a one-off heavy computation.

The server runs torch with one thread per script run (``app.py`` sets it at the start of every
run): with a class on one machine, the sessions' runs are what share the cores. A single
whole-volume computation (scoring a 200^3 upload) is different: one user waits on it, and two
threads halve the elementwise work. :func:`all_cores` raises the thread count for the duration of
the block, then restores it. torch's CPU build keeps the count per calling thread (OpenMP's
``omp_set_num_threads``), so the block affects the run it is in, not the other sessions' runs;
the distance transforms follow it (``segloss_core.core.distance`` reads the same count).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def all_cores() -> Iterator[int]:
    """Within the block torch uses ``os.cpu_count()`` threads (never fewer than before); yields that count."""
    before = torch.get_num_threads()
    torch.set_num_threads(max(before, os.cpu_count() or 1))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
