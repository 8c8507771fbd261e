"""ui.cores.all_cores: every core inside the block, the previous thread count after it, and only in
the thread (script run) that entered it."""

import os
import threading

import torch

from ui.cores import all_cores

CORES = max(1, os.cpu_count() or 1)


def test_all_cores_raises_the_thread_count_and_restores_it():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with all_cores() as n:
            assert n == torch.get_num_threads() == CORES
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_another_threads_block_leaves_this_thread_alone():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    seen: list[int] = []
    inside, release = threading.Event(), threading.Event()

    def other_session():
        torch.set_num_threads(1)  # as app.py does at the start of every run
        with all_cores():
            seen.append(torch.get_num_threads())
            inside.set()
            release.wait(10)

    worker = threading.Thread(target=other_session)
    try:
        worker.start()
        assert inside.wait(10)
        assert seen == [CORES] and torch.get_num_threads() == 1
    finally:
        release.set()
        worker.join(10)
        torch.set_num_threads(before)
