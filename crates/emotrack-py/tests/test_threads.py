"""Analysis releases the GIL: two Python threads analyse a batch faster than one, and a
Python thread keeps running while another analyses."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import emotrack
from conftest import KIT_WITH_ROSE, rgb_array

#: Photos per batch, and rounds measured (the best ratio counts: a machine shared with other
#: work slows some rounds down).
BATCH, ROUNDS = 8, 3


def test_two_threads_analyse_a_batch_faster_than_one(analyzer):
    """One analysis spreads over the cores only in part (a YuNet search runs on one), so two
    threads at once fill them: faster (1.3-1.4x on an idle 2-core machine), which they could not
    be if analyze held the GIL (then two threads take one's time or longer)."""
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one CPU")
    batch = [KIT_WITH_ROSE.read_bytes()] * BATCH
    analyzer.analyze(batch[0])

    def run(workers):
        t = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            assert all(len(faces) == 2 for faces in pool.map(analyzer.analyze, batch))
        return time.perf_counter() - t

    ratios = []
    for _ in range(ROUNDS):
        one, two = run(1), run(2)
        ratios.append(one / two)
        print(f"{BATCH} photos: one thread {one:.2f} s, two threads {two:.2f} s: {one / two:.2f}x")
    assert max(ratios) > 1.1, ratios


def test_a_python_thread_runs_while_another_analyses(analyzer):
    frame = rgb_array(KIT_WITH_ROSE)
    done = threading.Event()
    counts = []

    def count():
        n = 0
        while not done.is_set():
            n += 1
        counts.append(n)

    analyzer.analyze(frame)
    t = time.perf_counter()
    for _ in range(3):
        analyzer.analyze(frame)
    alone = time.perf_counter() - t
    counter = threading.Thread(target=count)
    counter.start()
    t = time.perf_counter()
    for _ in range(3):
        analyzer.analyze(frame)
    busy = time.perf_counter() - t
    done.set()
    counter.join()
    # Had analyze held the GIL, the counter would only have run between the calls. (How much
    # slower the analyses ran beside it depends on what else shares the cores, so it is printed,
    # not asserted: a timed assertion failed on a busy 2-core machine, 0.054 s against 0.20 s.)
    assert counts[0] > 10_000, counts
    print(f"3 analyses: {alone:.3f} s alone, {busy:.3f} s beside a busy Python thread")
