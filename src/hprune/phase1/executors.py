"""Running the R scoring runs in parallel: as worker processes of this machine (`hprune score --jobs N`,
no extra dependency: several runs of a small model share one GPU or a many-core CPU), or as Ray tasks
(`hprune score --executor ray`; Ray is optional, `pip install 'hprune[ray]'`, and imported only here).

On a local Ray (no address) the workers share this machine's disk: each run writes its dynamics
and resume checkpoints into OUT/dynamics itself, as in-process, so an interrupted scoring resumes.
On a cluster (`--ray-address`) the workers may not see OUT: they return the arrays and the driver
writes each run's files as it arrives, so finished runs are kept. Each task sets its torch threads
to its CPUs; with the same threads, a run's results equal the in-process run's (deterministic CPU).

The tokenized data is not copied per run: worker processes and a local Ray's workers map the cache file
(data.encoded) that the driver wrote; for a cluster the arrays go into Ray's object store once, and
the workers read them from there without a copy.
"""
from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path

from ..data import TokenArrays
from ..dynamics.store import finished_run, run_paths, save_run
from ..engine.workers import worker_pool
from ..errors import HpruneError, Interrupted
from ..io import read_json
from .run import RunInputs, score_run

log = logging.getLogger(__name__)  # progress lines and warnings; the CLI shows them as plain lines

POLL_SECONDS = 30  # how often the driver looks for finished epochs while the runs train


def import_ray():
    try:
        import ray
    except ImportError:
        raise HpruneError("--executor ray needs Ray, which is not installed: pip install 'hprune[ray]'") from None
    return ray


def run_on_ray(inputs: RunInputs, out: Path | None, *, address: str | None = None, cpus_per_run: int | None = None,
               gpus_per_run: float | None = None, progress: bool = True) -> list:
    """(dynamics, info) of every run, in run order; finished runs in `out` are loaded, not dispatched."""
    ray = import_ray()
    cfg = inputs.config
    cpus = cpus_per_run or 1
    results = {r: finished_run(out, r, cfg.scored_epochs()) for r in range(cfg.runs)}
    todo = [r for r, done in results.items() if done is None]
    if not todo:
        return [results[r] for r in range(cfg.runs)]
    started_here = not ray.is_initialized()
    if started_here:
        if address is None and (warning := busy_machine_warning(_busy_cores(), os.cpu_count() or 1, len(todo) * cpus)):
            log.warning(warning)
        _init(ray, address, cpus)
    worker_out = out if address is None else None  # a cluster's workers may not see this disk
    try:
        shared = ray.put(dataclasses.replace(inputs, progress=False) if worker_out is not None else _by_value(inputs))
        task = ray.remote(score_run).options(num_cpus=cpus, num_gpus=gpus_per_run or 0, max_retries=0)
        pending = {task.remote(shared, r, worker_out, threads=cpus): r for r in todo}
        t0, epochs_seen = time.perf_counter(), {}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            if not ready:
                if progress and worker_out is not None:
                    for line in epoch_progress(worker_out, sorted(pending.values()), cfg.runs, cfg.scored_epochs(), epochs_seen):
                        log.info(line)
                continue
            r = pending.pop(ready[0])
            try:
                results[r] = ray.get(ready[0])
            except ray.exceptions.RayTaskError as e:
                cause = getattr(e, "cause", None)
                raise (cause if isinstance(cause, HpruneError) else RuntimeError(f"scoring run {r} failed on Ray:\n{e}")) from None
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.LocalRayletDiedError):
                raise Interrupted() from None  # a killed worker: its run resumes from its last epoch
            if out is not None and worker_out is None:
                save_run(out, r, *results[r])
            if progress:
                log.info(f"run {r + 1}/{cfg.runs} done on Ray ({time.perf_counter() - t0:.0f} s, {len(pending)} left)")
    finally:
        if started_here:
            ray.shutdown()
    return [results[r] for r in range(cfg.runs)]


def _by_value(inputs: RunInputs) -> RunInputs:
    """For workers that may not see this machine's disk (a Ray cluster): token arrays held in memory, so they go
    into the object store by value, once, rather than as the path of their cache folder."""
    arrays = {name: getattr(inputs, name).in_memory() for name in ("features", "eval_features") if isinstance(getattr(inputs, name), TokenArrays)}
    return dataclasses.replace(inputs, progress=False, **arrays)


def run_in_processes(inputs: RunInputs, out: Path | None, *, jobs: int, threads: int | None = None, progress: bool = True) -> list:
    """(dynamics, info) of every run, in run order, `jobs` runs at a time in fresh worker processes
    (engine.workers), each on `threads` torch threads (default: the cores shared out). Workers write their
    files into `out` as in-process, so an interrupted scoring resumes; finished runs are loaded, not trained again."""
    from concurrent.futures import as_completed

    cfg = inputs.config
    results = {r: finished_run(out, r, cfg.scored_epochs()) for r in range(cfg.runs)}
    todo = [r for r, done in results.items() if done is None]
    per_run = threads or max(1, (os.cpu_count() or 1) // min(jobs, max(len(todo), 1)))
    shared, t0 = dataclasses.replace(inputs, progress=False), time.perf_counter()
    if todo:
        with worker_pool(min(jobs, len(todo))) as pool:
            futures = {pool.submit(score_run, shared, r, out, threads=per_run): r for r in todo}
            for done, future in enumerate(as_completed(futures), 1):
                r = futures[future]
                results[r] = future.result()
                if progress:
                    log.info(f"run {r + 1}/{cfg.runs} done ({time.perf_counter() - t0:.0f} s, {len(todo) - done} left)")
    return [results[r] for r in range(cfg.runs)]


def epoch_progress(out: Path, runs: list[int], n_runs: int, n_epochs: int, seen: dict[int, int]) -> list[str]:
    """A line for every epoch that one of `runs` finished since the last call (`seen`: run -> epochs
    reported), read from the info file a local worker rewrites at each epoch end: a Ray run takes many
    minutes, and its workers' own progress bars are not shown."""
    lines = []
    for r in runs:
        path = run_paths(out, r)["json"]
        try:
            info = read_json(path)
        except (OSError, ValueError):  # not written yet
            continue
        done = len(info.get("train_loss", []))
        if done > seen.get(r, 0):
            seen[r] = done
            evals = info.get("eval_accuracy", [])
            lines.append(f"run {r + 1}/{n_runs}: epoch {done}/{n_epochs} done, train loss {info['train_loss'][-1]:.4f}"
                         + (f", eval accuracy {evals[-1]:.4f}" if evals else "") + f" ({info.get('train_seconds', 0):.0f} s training)")
    return lines


def busy_machine_warning(busy: float, cores: int, cpus_wanted: int) -> str | None:
    """A warning when other work already holds the cores a local Ray's runs would need: Ray starts its
    local workers at a low CPU priority (nice 15, measured), so beside busy processes they get a small
    share of the CPU and the runs take several times longer (930 s instead of 405 s an epoch, measured)."""
    if busy + min(cpus_wanted, cores) <= cores + 0.5:
        return None
    return (f"this machine is busy ({busy:.1f} of {cores} cores in use) and Ray's local workers run at low CPU "
            "priority, so the runs will be slow beside that work; run the scoring alone, or use --executor local")


def _busy_cores() -> float:
    """Cores in use now, over half a second: the load average trails by a minute, so work that has just
    ended would still count (psutil: the ray extra)."""
    import psutil

    return psutil.cpu_percent(interval=0.5) / 100 * (os.cpu_count() or 1)


def _init(ray, address: str | None, cpus_per_run: int) -> None:
    quiet = {"include_dashboard": False, "log_to_driver": False, "logging_level": "warning", "configure_logging": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise HpruneError(f"could not connect to the Ray cluster at {address} ({str(e).splitlines()[0][:200]}); "
                              "check --ray-address (e.g. ray://HOST:10001 or auto)") from None
    else:
        # A new local Ray with this machine's cores, never one found by address autodetection.
        ray.init(address="local", num_cpus=max(os.cpu_count() or 1, cpus_per_run), **quiet)
