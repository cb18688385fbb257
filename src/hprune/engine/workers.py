"""Worker processes for whole jobs (scoring runs with `score --jobs`, fine-tunes with `compare --jobs`): spawned,
never forked from a process whose torch threads or CUDA context already run, and stopped with the command."""
from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

from ..errors import Interrupted


def _leave_interrupts_to_the_driver() -> None:
    # Ctrl-C reaches the whole process group; the driver stops the workers (a traceback from each otherwise)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextmanager
def worker_pool(workers: int):
    """A process pool of `workers`. When the command is interrupted the workers are stopped at once (SIGTERM:
    a worker holds it back while it writes a file, so every file is whole); a worker killed from outside
    (out of memory, `kill`) stops the command as an interruption (errors.Interrupted), not a traceback."""
    # multiprocessing's resource tracker (a process it starts with this environment) cleans up what a killed
    # worker held, and would warn about it after the one line
    quiet = "ignore::UserWarning:multiprocessing.resource_tracker"
    if quiet not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), quiet]))
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_leave_interrupts_to_the_driver)
    try:
        yield pool
    except BrokenProcessPool:
        _stop(pool)
        raise Interrupted() from None
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


def _stop(pool: ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor cannot stop work in progress: its processes (a private attribute) are terminated
    for process in list((pool._processes or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)
