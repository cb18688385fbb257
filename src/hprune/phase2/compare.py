"""Phase 2 at equal size: fine-tune the full set, each automatic subset ("hscore") and each baseline at
that subset's size or at a budget (a fraction of the rows), with several seeds, and evaluate. Every
fine-tune's result is cached under a key of everything that determines it, so an interrupted or extended
comparison trains only what is missing."""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..artifacts import check_fingerprint, load_scored_data, load_scoring
from ..config import COMPARE_METHODS, TrainConfig
from ..data import LabelledData
from ..engine.loop import RUN_CONDITIONS
from ..engine.models import model_identity, recorded_name
from ..errors import HpruneError
from ..io import atomic_path, ensure_writable, file_digest, file_problem, read_json, write_json
from ..metrics import TEST_PREFIX
from ..reports import FULL, summarize, write_report
from ..subsets import BUDGET_METHODS, budget_size, find_subset, nearest_subset, runs_of, select, subset_mask
from ..tasks import get_task, task_of
from .finetune import train_and_evaluate

log = logging.getLogger(__name__)  # progress and notes; the CLI shows them as plain lines

HSCORE = "hscore"
RS2 = "rs2"  # a new random subset of the size every epoch (subsets.rs2_epochs): no scoring, the same example-steps
METHODS = (HSCORE, RS2, *BUDGET_METHODS)
DEFAULT_METHODS = COMPARE_METHODS
# Phase 2 wants seeds the scoring runs never used (they use 0..R-1 by default), as the paper does.
FIRST_SEED = 1000
RESULTS_FILE, SUMMARY_FILE, COMPARE_FILE, CACHE_DIR = "results.csv", "summary.csv", "compare.json", "cache"
# What makes two comparisons' results one table: the same data, model, settings and scoring.
SAME_COMPARISON = ("task", "scoring_dir", "fingerprint", "eval_fingerprint", "test_fingerprint", "model", "config", "class_balanced")


def result_columns(metrics: tuple[str, ...]) -> list[str]:
    return ["task", "method", "subset", "size", "fraction", "seed", *metrics, "train_seconds", *RUN_CONDITIONS]  # conditions: empty in older cache entries


def tested_metrics(metrics: tuple[str, ...], tested: bool) -> tuple[str, ...]:
    """The task's metrics, followed by their `test_` twins when a test file is evaluated too."""
    return (*metrics, *(f"{TEST_PREFIX}{m}" for m in metrics)) if tested else tuple(metrics)


@dataclass
class Job:
    """One fine-tune of a comparison: which examples (picked by which method), with which seed; with `epoch_size`,
    a new random subset of that size of `ids` every epoch (RS2)."""

    method: str
    subset: str
    ids: np.ndarray
    seed: int
    epoch_size: int | None = None


def phase2_seeds(n: int, scoring_seeds: list[int], first: int | None = None) -> list[int]:
    """n consecutive seeds from `first`; by default from FIRST_SEED, or past the last scoring seed."""
    if first is None:
        first = max(FIRST_SEED, max(scoring_seeds) + 1)
    return list(range(first, first + n))


def budget_label(fraction: float) -> str:
    """The subset column's name for a budget: 0.3 -> "30%"."""
    return f"{100 * fraction:g}%"


def plan(scores: pd.DataFrame, subsets: list[dict], *, subset_names: list[str] | None, methods: list[str],
         seeds: list[int], class_balanced: bool = False, fractions: list[float] | None = None,
         full_set: bool = True) -> tuple[list[Job], list[str]]:
    """The full set (unless `full_set` is false), then every target from the largest down, each filled by every method with every seed.

    Targets: the named automatic subsets (without names: none when `fractions` are given, else the paper's
    family when R = 6, else the whole family) and a budget per fraction (round(fraction x N) examples). At a
    budget, hscore is the automatic subset nearest in size, under its own name. Empty subsets are skipped;
    the second value says which, and which subset stood in for each budget.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise HpruneError(f"unknown method {', '.join(map(repr, unknown))}; choose from: {', '.join(METHODS)}")
    if subset_names:
        chosen = [find_subset(subsets, n) for n in subset_names]
    else:
        chosen = [] if fractions else [s for s in subsets if s.get("paper")] or subsets
    all_ids, h, n_runs = scores["example_id"].to_numpy(), scores["h_score"].to_numpy(), runs_of(subsets)
    targets = [(s["name"], s["size"], s) for s in {s["name"]: s for s in chosen}.values()]
    targets += [(budget_label(f), budget_size(len(scores), fraction=f), None) for f in fractions or []]
    jobs, notes = [Job(FULL, FULL, all_ids, seed) for seed in seeds if full_set], []
    for label, size, subset in sorted(targets, key=lambda t: -t[1]):
        if size == 0:
            notes.append(f"subset {label} is empty on this data; skipped")
            continue
        if subset is None and HSCORE in methods:
            subset = nearest_subset(subsets, size)
            notes.append(f"at {label} ({size} examples) hscore is the automatic subset {subset['name']} ({subset['size']} examples), the nearest in size")
        for method in methods:
            for seed in seeds:  # "random", rs2 and the stratified rules draw afresh per seed; the other methods are deterministic
                if method == HSCORE:
                    jobs.append(Job(HSCORE, subset["name"], all_ids[subset_mask(h, subset["removed_h"])], seed))
                elif method == RS2:
                    jobs.append(Job(RS2, label, all_ids, seed, epoch_size=size))
                else:
                    ids = select(scores, method, size, class_balanced=class_balanced, seed=seed, n_runs=n_runs)
                    jobs.append(Job(method, label, ids, seed))
    return list({(j.method, j.subset, j.seed): j for j in jobs}.values()), notes  # a subset nearest to two budgets trains once


def cache_key(*, fingerprint: str, eval_fingerprint: str, subset: str, method: str, ids: np.ndarray, seed: int,
              model: str, config: TrainConfig, test_fingerprint: str | None = None, epoch_size: int | None = None) -> str:
    """sha256 of everything that determines a fine-tune's result; the example ids in training order; `model` as
    engine.models.model_identity gives it. The test file and RS2's per-epoch size enter only when there are some,
    so results cached without them (no test file, static subsets) keep their keys."""
    ids_digest = hashlib.sha256(np.asarray(ids, dtype="<i8").tobytes()).hexdigest()
    parts = {"fingerprint": fingerprint, "eval_fingerprint": eval_fingerprint, "subset": subset, "method": method,
             "ids": ids_digest, "seed": seed, "model": model, "config": config.to_dict()}
    optional = {"test_fingerprint": test_fingerprint, "epoch_size": epoch_size}
    parts.update({k: v for k, v in optional.items() if v is not None})
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def run_jobs(jobs: list[Job], train: LabelledData, eval_data: LabelledData, *, model: str, config: TrainConfig,
             cache_dir: Path, task: str, metric: str = "accuracy", threads: int | None = None, parallel: int = 1,
             progress: bool = True, test_data: LabelledData | None = None, recorded: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """One results row per job: read from the cache, or fine-tuned and cached as soon as it finishes; and the
    size and sha256 of every cache entry used, by its path in the comparison folder. An entry that is
    unreadable or fails its checksum in `recorded` (an earlier compare.json's) is trained again, with a warning.

    `parallel` > 1 runs that many fine-tunes at once in worker processes, each on `threads` torch threads
    (default: the cores shared out); on a small CPU two 1-thread fine-tunes side by side beat one on two
    threads (docs/performance.md). Results do not depend on it: each fine-tune is seeded and deterministic."""
    metric_names = tested_metrics(task_of(train).metrics, test_data is not None)
    test_fingerprint = test_data.fingerprint if test_data is not None else None
    identity = model_identity(model)

    def cache_path(job: Job) -> Path:
        key = cache_key(fingerprint=train.fingerprint, eval_fingerprint=eval_data.fingerprint, subset=job.subset,
                        method=job.method, ids=job.ids, seed=job.seed, model=identity, config=config,
                        test_fingerprint=test_fingerprint, epoch_size=job.epoch_size)
        return cache_dir / f"{key}.json"

    paths = [cache_path(j) for j in jobs]
    todo = [(job, path) for job, path in zip(jobs, paths) if not _usable_entry(path, (recorded or {}).get(_entry_name(path)))]
    log.info(f"{len(jobs)} fine-tunes: {len(jobs) - len(todo)} cached, {len(todo)} to train")
    started = time.perf_counter()

    def finished(done: int, job: Job, path: Path, metrics: dict) -> None:
        write_json(path, {"method": job.method, "subset": job.subset, "seed": job.seed, "model": model,
                          **({"epoch_size": job.epoch_size} if job.epoch_size else {}),
                          "fingerprint": train.fingerprint, "eval_fingerprint": eval_data.fingerprint,
                          **({"test_fingerprint": test_fingerprint} if test_fingerprint else {}),
                          "config": config.to_dict(), "metrics": metrics})
        eta = (time.perf_counter() - started) / done * (len(todo) - done)
        log.info(f"[{done}/{len(todo)}] {job.method} {job.subset} seed {job.seed}: {metrics['train_size']} examples, "
                 f"{metric} {metrics[metric]:.4f}, {metrics['train_seconds']:.0f} s; ETA {_duration(eta)}")

    if parallel > 1 and len(todo) > 1:
        import os
        from concurrent.futures import as_completed

        from ..engine.workers import worker_pool

        per_job = threads or max(1, (os.cpu_count() or 1) // parallel)
        with worker_pool(min(parallel, len(todo))) as pool:
            futures = {pool.submit(train_and_evaluate, model, train, eval_data, config, seed=job.seed, example_ids=job.ids,
                                   threads=per_job, test_data=test_data, epoch_size=job.epoch_size): (job, path) for job, path in todo}
            for done, future in enumerate(as_completed(futures), 1):
                finished(done, *futures[future], future.result())
    else:
        for done, (job, path) in enumerate(todo, 1):
            label = f"[{done}/{len(todo)}] {job.method} {job.subset} seed {job.seed}"
            finished(done, job, path, train_and_evaluate(model, train, eval_data, config, seed=job.seed, example_ids=job.ids,
                                                         progress=label if progress else None, threads=threads, test_data=test_data,
                                                         epoch_size=job.epoch_size))
    rows = []
    for job, path in zip(jobs, paths):
        m = read_json(path)["metrics"]
        rows.append({"task": task, "method": job.method, "subset": job.subset, "size": m["train_size"],
                     "fraction": m["train_size"] / len(train), "seed": job.seed, **{k: m[k] for k in metric_names},
                     "train_seconds": m["train_seconds"], **{k: m.get(k) for k in RUN_CONDITIONS}})
    return pd.DataFrame(rows, columns=result_columns(metric_names)), {_entry_name(p): file_digest(p) for p in dict.fromkeys(paths)}


def _entry_name(path: Path) -> str:
    return f"{CACHE_DIR}/{path.name}"


def _usable_entry(path: Path, digest: dict | None) -> bool:
    """A cache entry to reuse: there, readable, and (when recorded) the file that was written."""
    if not path.is_file():
        return False
    problem = file_problem(path, digest) if digest else None
    if problem is None:
        try:
            read_json(path)["metrics"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            problem = f"{path} is unreadable ({type(e).__name__})"
    if problem:
        log.warning(f"{problem}; training that fine-tune again")
    return problem is None


def comparison_files(out: Path) -> dict[str, dict]:
    """The files a comparison recorded (results, summary, cache entries) with their size and sha256."""
    info = _read_info(out)
    if "files" not in info:
        raise HpruneError(f"{out / COMPARE_FILE} records no checksums (written before hprune recorded them); nothing to verify")
    return info["files"]


def _read_info(out: Path) -> dict:
    try:
        return read_json(out / COMPARE_FILE)
    except (ValueError, UnicodeDecodeError) as e:
        raise HpruneError(f"{out / COMPARE_FILE} is not valid JSON ({e}); run the same `hprune compare` command again "
                          "(its fine-tunes are cached)") from None


def _earlier_info(out: Path) -> dict:
    """The compare.json an earlier comparison left in `out`; an unreadable one is rewritten by this one."""
    if not (out / COMPARE_FILE).is_file():
        return {}
    try:
        return read_json(out / COMPARE_FILE)
    except (ValueError, UnicodeDecodeError) as e:
        log.warning(f"{out / COMPARE_FILE} is unreadable ({e}); this comparison writes it again")
        return {}


def compare(scoring_dir: str | Path, eval_source: str, *, out: str | Path, config: TrainConfig, train_source: str | None = None,
            model: str | None = None, subsets: list[str] | None = None, methods: list[str] | None = None,
            n_seeds: int = 3, first_seed: int | None = None, class_balanced: bool = False, metric: str | None = None,
            task: str | None = None, allow_fingerprint_mismatch: bool = False, threads: int | None = None,
            parallel: int = 1, progress: bool = True, test_source: str | None = None, fractions: list[float] | None = None,
            full_set: bool = True) -> pd.DataFrame:
    """Run (or complete) a comparison into `out`: results.csv, summary.csv, compare.json and the report.

    `model` defaults to the scoring's model, `methods` to DEFAULT_METHODS, `task` to the scoring folder's
    name, `metric` to the task's (accuracy; F1 for extractive QA). `test_source`: a second held-out file
    every fine-tune is evaluated on too (results.csv gets `test_` columns); the report stays on `eval_source`,
    the one to choose subsets and settings by. `fractions`: budgets to compare at (plan()). `full_set=False`
    leaves out the full set's fine-tunes (those already in `out` stay in its results). Returns the summary.
    """
    manifest, scores, family = load_scoring(scoring_dir)
    metric = check_metric(manifest.get("task_type"), metric)
    train = load_scored_data(manifest, train_source)
    if check_fingerprint(manifest, train, allow_mismatch=allow_fingerprint_mismatch):
        log.warning(f"{train.source} is not the data that was scored; comparing anyway (--allow-fingerprint-mismatch)")
    eval_data = load_scored_data(manifest, eval_source, label_names=train.label_names)
    test_data = load_scored_data(manifest, test_source, label_names=train.label_names) if test_source else None
    methods = list(methods or DEFAULT_METHODS)
    seeds = phase2_seeds(n_seeds, manifest["config"]["seeds"], first_seed)
    jobs, notes = plan(scores, family, subset_names=subsets, methods=methods, seeds=seeds, class_balanced=class_balanced, fractions=fractions,
                       full_set=full_set)
    out = Path(out)
    ensure_writable(out)  # only now, so that a bad input leaves nothing behind
    model = recorded_name(model or manifest["config"]["model"])
    task = task or Path(scoring_dir).resolve().name
    for note in notes:
        log.info(f"note: {note}")
    earlier = _earlier_info(out)
    (out / CACHE_DIR).mkdir(exist_ok=True)
    results, entries = run_jobs(jobs, train, eval_data, model=model, config=config, cache_dir=out / CACHE_DIR, task=task, metric=metric,
                                threads=threads, parallel=parallel, progress=progress, test_data=test_data, recorded=earlier.get("files"))
    info = {
        "task": task, "scoring_dir": str(Path(scoring_dir).resolve()), "train_source": train.source, "eval_source": eval_data.source,
        "fingerprint": train.fingerprint, "eval_fingerprint": eval_data.fingerprint, "model": model, "config": config.to_dict(),
        "test_source": test_data.source if test_data else None, "test_fingerprint": test_data.fingerprint if test_data else None,
        "seeds": seeds, "methods": methods, "subsets": list(dict.fromkeys(j.subset for j in jobs if j.subset != FULL)),
        "class_balanced": class_balanced, "metric": metric,
    }
    results, info = merge_earlier(out, results, info, earlier)
    summary = summarize(results)
    _write_csv(results, out / RESULTS_FILE)
    _write_csv(summary, out / SUMMARY_FILE)
    # entries recorded earlier stay recorded: `hprune verify` checks every cache entry this folder's comparisons wrote
    files = {**{k: v for k, v in earlier.get("files", {}).items() if k.startswith(f"{CACHE_DIR}/")}, **entries}
    write_json(out / COMPARE_FILE, {**info, "files": {name: file_digest(out / name) for name in (RESULTS_FILE, SUMMARY_FILE)} | files})
    write_report(out, results=results, scores=scores, subsets=family, manifest=manifest, info=info, metric=metric)
    return summary


def merge_earlier(out: Path, results: pd.DataFrame, info: dict, earlier_info: dict) -> tuple[pd.DataFrame, dict]:
    """Add the rows of an earlier comparison in `out` (`earlier_info`: its compare.json) that this one did not
    repeat, so that extending a folder with other subsets, methods or seeds keeps what it held. An earlier
    comparison with other settings, or whose results.csv fails its checksum, is replaced (its fine-tunes
    stay cached), and the user is told."""
    if not earlier_info or not (out / RESULTS_FILE).is_file():
        return results, info
    digest = earlier_info.get("files", {}).get(RESULTS_FILE)
    problem = file_problem(out / RESULTS_FILE, digest) if digest else None
    if problem:
        log.warning(f"{problem}; its rows are replaced by this comparison's (its fine-tunes stay cached)")
        return results, info
    changed = [k for k in SAME_COMPARISON if earlier_info.get(k) != json.loads(json.dumps(info[k]))]
    if changed:
        log.info(f"note: {out} held a comparison with another {', '.join(changed)}; its results are replaced "
                 "(its fine-tunes stay cached)")
        return results, info
    earlier = read_results(out / RESULTS_FILE)
    key = ["method", "subset", "seed"]
    kept = earlier[~earlier.set_index(key).index.isin(results.set_index(key).index)]
    if kept.empty:
        return results, info
    union = {k: list(dict.fromkeys([*earlier_info[k], *info[k]])) for k in ("seeds", "methods", "subsets")}
    # the order of plan(): the full set, then from the largest subset down, methods in the order given, then seeds
    method_rank = {m: i for i, m in enumerate([FULL, *union["methods"]])}
    merged = pd.concat([results, kept], ignore_index=True)
    order = merged.assign(_m=merged["method"].map(method_rank)).sort_values(["size", "subset", "_m", "seed"],
                                                                             ascending=[False, True, True, True], kind="stable").index
    return merged.loc[order].reset_index(drop=True), {**info, **union}


def read_results(path: str | Path) -> pd.DataFrame:
    """A results.csv as written: subset names such as 0156 stay text (pandas alone would read 156)."""
    return pd.read_csv(path, dtype={"task": str, "method": str, "subset": str})


def report(report_dir: str | Path, *, scoring_dir: str | Path | None = None, metric: str | None = None) -> Path:
    """(Re)write the report of a comparison folder from its results.csv and the scoring folder."""
    out = Path(report_dir)
    if not (out / COMPARE_FILE).is_file() or not (out / RESULTS_FILE).is_file():
        raise HpruneError(f"{out} holds no finished comparison ({COMPARE_FILE}, {RESULTS_FILE}); run `hprune compare --out {out}` first")
    info = _read_info(out)
    digest = info.get("files", {}).get(RESULTS_FILE)
    problem = file_problem(out / RESULTS_FILE, digest) if digest else None
    if problem:
        raise HpruneError(f"{problem}; run the same `hprune compare` command to write it again (its fine-tunes are cached)")
    manifest, scores, subsets = load_scoring(scoring_dir or info["scoring_dir"])
    return write_report(out, results=read_results(out / RESULTS_FILE), scores=scores, subsets=subsets, manifest=manifest,
                        info=info, metric=check_metric(manifest.get("task_type"), metric or info["metric"]))


def check_metric(task_type: str | None, metric: str | None) -> str:
    """The metric to show: the task's default when None; refused when the task does not measure it."""
    task = get_task(task_type)
    if metric is None:
        return task.default_metric
    if metric not in task.metrics:
        raise HpruneError(f"--metric {metric} is not measured for {task.name} data; choose {' or '.join(task.metrics)}")
    return metric


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min" if hours else f"{m} min {s:02d} s" if m else f"{s} s"
