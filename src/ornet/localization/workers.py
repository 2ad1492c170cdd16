"""Worker processes for scoring saved maps (`wsoleval.evaluate_scoremaps`): which start method is
safe in this process, and a pool that keeps a bounded number of chunks in flight so that a
caller that stops early (a bad map) can end it cleanly."""

from __future__ import annotations

import collections
import itertools
import multiprocessing as mp
import sys

import cv2


def start_method() -> str:
    """fork (cheapest) unless torch is loaded in this process: forking after torch's OpenMP
    threads have run can hang the child (seen when `evaluate-maps` runs in a process that trained
    or localised before), so then a fresh interpreter (forkserver / spawn). The `evaluate-maps`
    command never imports torch and keeps fork."""
    methods = mp.get_all_start_methods()
    if "fork" in methods and "torch" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _init_worker() -> None:
    cv2.setNumThreads(1)  # parallelism comes from the processes


def in_pool(run, chunks: list, workers: int):
    """`run(chunk)` for every chunk on `workers` processes, results in chunk order.

    At most two chunks per worker are in flight, so when the caller stops early (a bad image
    raises DataError) nothing is queued but those: they are waited for and the pool is closed
    and joined. `Pool.terminate()` with tasks still queued could hang in its task-handler thread
    (seen under pytest-xdist: a put into the full task pipe of workers already killed); it is
    used only when the caller is interrupted (Ctrl+C), where waiting is not wanted.
    """
    pool = mp.get_context(start_method()).Pool(workers, initializer=_init_worker)
    pending: collections.deque = collections.deque()
    todo = iter(chunks)
    clean = False
    try:
        for chunk in itertools.islice(todo, 2 * workers):
            pending.append(pool.apply_async(run, (chunk,)))
        while pending:
            result = pending.popleft().get()
            chunk = next(todo, None)
            if chunk is not None:
                pending.append(pool.apply_async(run, (chunk,)))
            yield result
        clean = True
    except GeneratorExit:  # the caller stopped early: let the chunks in flight finish
        for job in pending:
            job.wait()
        clean = True
        raise
    finally:
        if clean:
            pool.close()
        else:
            pool.terminate()
        pool.join()
