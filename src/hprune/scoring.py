"""Phase 1: R fine-tunes of E epochs on the full training set, recorded, then H and the other scores.

`HScorer` is the one stateful object of the workflow. With an output folder, each run's dynamics and
a resume checkpoint are saved atomically at every epoch end: repeating the command skips finished
runs and continues an interrupted one from its last completed epoch, with identical results.
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from filelock import FileLock, Timeout

from . import diagnostics
from .config import ScoreConfig
from .data import LabelledData, load_data
from .distributed import World, barrier, current_world, device_for, gather_epoch, init_from_env
from .dynamics import DynamicsRecorder, FeatureRecorder, RunDynamics, stack_runs
from .errors import HpruneError
from .io import atomic_path, ensure_writable, read_json, remove_stale_temps, write_json
from .models import check_model, load_model, recorded_name
from .scores import score_table
from .subsets import describe_subsets, subset_family
from .tasks import Encoded, get_task, load_task_data, task_of
from .training import default_device, fine_tune, seed_everything, setup_torch

SCORES_FILE, SUBSETS_FILE, MANIFEST_FILE = "scores.parquet", "subsets.json", "manifest.json"


class HScorer:
    """Score a labelled dataset: `fit` sets `dynamics_`, `scores_`, `subsets_`, `learning_report_`, `warnings_`.

    `executor="local"` trains the R runs one after another in this process; `"ray"` dispatches them
    as Ray tasks (`cpus_per_run`/`gpus_per_run` each) on a local Ray, or on the cluster at
    `ray_address`, with the same results for the same seeds. Started by `torchrun`/`accelerate
    launch`, every run trains with DDP over the launched processes and rank 0 writes the files.
    """

    def __init__(self, config: ScoreConfig, *, out_dir: str | Path | None = None, progress: bool = True, threads: int | None = None,
                 executor: str = "local", ray_address: str | None = None, cpus_per_run: int | None = None, gpus_per_run: float | None = None):
        if executor not in EXECUTORS:
            raise HpruneError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
        if executor != "ray" and (ray_address or cpus_per_run or gpus_per_run):
            raise HpruneError("--ray-address, --cpus-per-run and --gpus-per-run go with --executor ray")
        self.config = config
        self.out_dir = out_dir
        self.progress = progress
        self.threads = threads
        self.executor = executor
        self.ray_address = ray_address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run

    def fit(self, train: LabelledData, eval_data: LabelledData | None = None) -> "HScorer":
        cfg = self.config
        if cfg.runs < 1 or cfg.train.epochs < 1:
            raise HpruneError(f"--runs and --epochs must be at least 1 (got {cfg.runs} and {cfg.train.epochs})")
        subset_family(cfg.runs)  # refuses R = 1 now rather than after every run has trained
        check_model(cfg.model, max_length=cfg.train.max_length)  # everything cheap is checked before --out is touched
        if self.executor == "ray":
            from .executors import import_ray

            import_ray()  # a missing Ray fails here, before --out is touched
            if current_world().distributed:
                raise HpruneError("--executor ray dispatches whole runs; start it once, not under torchrun or accelerate launch")
        setup_torch(self.threads)
        self.world_, created = init_from_env()
        try:
            return self._fit_locked(train, eval_data)
        finally:
            if created:
                torch.distributed.destroy_process_group()

    def _fit_locked(self, train: LabelledData, eval_data: LabelledData | None) -> "HScorer":
        out = Path(self.out_dir) if self.out_dir is not None else None
        if out is None:
            return self._fit(train, eval_data, None)
        if not self.world_.is_main:  # rank 0 holds the lock and prepares the folder for all ranks
            return self._fit(train, eval_data, out)
        ensure_writable(out)
        try:
            with FileLock(out / ".lock", timeout=0):
                remove_stale_temps(out)  # left by a process killed mid-write
                return self._fit(train, eval_data, out)
        except Timeout:
            raise HpruneError(f"another hprune score is running on {out}; wait for it or use another --out") from None

    def _fit(self, train: LabelledData, eval_data: LabelledData | None, out: Path | None) -> "HScorer":
        cfg, world = self.config, self.world_
        started = time.perf_counter()
        # The number of processes changes the effective batch size, hence the scores: part of the identity.
        config = {**cfg.to_dict(), "model": recorded_name(cfg.model), "processes": world.size}
        identity = {"config": config, "fingerprint": train.fingerprint, "eval_fingerprint": eval_data.fingerprint if eval_data else None}
        finished = _finished_scoring(out, identity) if out is not None else None
        if out is not None and world.is_main and finished is None:  # a finished folder stays usable while the command is repeated
            write_json(out / MANIFEST_FILE, {**identity, "status": "running", **_data_info(train)})
        barrier(world)
        task = task_of(train)
        tokenizer, _ = load_model(cfg.model, train.label_names, task.name)  # fails fast on a bad model
        encoded = task.encode(tokenizer, train, cfg.train.max_length)
        eval_encoded = task.encode(tokenizer, eval_data, cfg.train.max_length) if eval_data else None
        inputs = RunInputs(
            config=cfg, label_names=train.label_names, labels=encoded.targets, features=encoded.features,
            eval_labels=eval_encoded.targets if eval_data else None, eval_features=eval_encoded.features if eval_data else None,
            progress=self.progress, world=world, task_type=task.name, n_examples=len(train),
            example_index=encoded.example_index if encoded.grouped else None, relevant=encoded.relevant,
            eval_data=eval_data if eval_encoded is not None and eval_encoded.grouped else None,
            eval_encoded=eval_encoded if eval_encoded is not None and eval_encoded.grouped else None,
        )
        if self.executor == "ray":
            from .executors import run_on_ray

            results = run_on_ray(inputs, out, address=self.ray_address, cpus_per_run=self.cpus_per_run or self.threads, gpus_per_run=self.gpus_per_run,
                                 progress=self.progress)
        else:
            results = [score_run(inputs, r, out) for r in range(cfg.runs)]
        runs, run_info = [d for d, _ in results], [i for _, i in results]
        device = device_for(world) if world.distributed else default_device()
        scoring = write_scoring(
            out if world.is_main else None, runs, run_info, labels=train.labels, label_names=train.label_names, config=config,
            example_ids=train.example_ids, baseline=task.baseline(train),
            manifest={**identity, **_data_info(train), "eval_source": eval_data.source if eval_data else None, "device": str(device),
                      # a repeat of a finished scoring trains nothing: it keeps the time of the one that did
                      "executor": self.executor, "seconds": (finished or {}).get("seconds", round(time.perf_counter() - started, 1))},
        )
        self.dynamics_, self.scores_, self.subsets_ = scoring.dynamics, scoring.scores, scoring.subsets
        self.learning_report_, self.warnings_, self.manifest_ = scoring.learning_report, scoring.warnings, scoring.manifest
        return self


EXECUTORS = ("local", "ray")


@dataclass
class RunInputs:
    """What every run of one scoring shares. Picklable, so that a run can execute in another process."""

    config: ScoreConfig
    label_names: list[str]
    labels: np.ndarray
    features: list[dict]
    eval_labels: np.ndarray | None = None
    eval_features: list[dict] | None = None
    progress: bool = True
    world: World = field(default_factory=World)
    # hprune.tasks: the task kind; with several features per example (QA), each feature's example
    # (0..n_examples-1) and whether its verdict counts for it (dynamics.aggregate_features).
    task_type: str = "classification"
    n_examples: int | None = None
    example_index: np.ndarray | None = None
    relevant: np.ndarray | None = None
    # Evaluation data and encoding when the metric needs more than labels (QA: contexts, answers, offsets).
    eval_data: object = None
    eval_encoded: Encoded | None = None


def run_paths(out: Path, r: int) -> dict[str, Path]:
    """Run r's files: dynamics (.npz), timings and losses (.json), resume checkpoint (.ckpt)."""
    return {k: Path(out) / "dynamics" / f"run-{r}.{k}" for k in ("npz", "json", "ckpt")}


def finished_run(out: Path | None, r: int, n_epochs: int, *, tidy: bool = True) -> tuple[RunDynamics, dict] | None:
    """Run r's saved dynamics and info when the folder holds it finished, else None."""
    if out is None:
        return None
    paths = run_paths(out, r)
    if not paths["npz"].exists():
        return None
    saved = RunDynamics.load(paths["npz"])
    if saved.epochs_done != n_epochs:
        return None
    if tidy:
        paths["ckpt"].unlink(missing_ok=True)  # killed between the last epoch's dynamics and this unlink
    return saved, read_json(paths["json"])


def score_run(inputs: RunInputs, r: int, out: Path | None, *, threads: int | None = None) -> tuple[RunDynamics, dict]:
    """Scoring run r (seed `config.seed + r`): fine-tune and record its dynamics. With `out`, its files
    are saved at every epoch end and an interrupted run resumes from its last checkpoint; a finished
    one is loaded, not trained. In-process or as a remote task (`threads`: the worker's torch threads)."""
    if threads:
        setup_torch(threads)
    cfg, world = inputs.config, inputs.world
    seed, n_epochs = cfg.seeds()[r], cfg.train.epochs
    done = finished_run(out, r, n_epochs, tidy=world.is_main)
    if done is not None:
        return done
    paths = run_paths(out, r) if out else None
    dyn, info, resume = RunDynamics.empty(n_epochs, inputs.n_examples or len(inputs.labels)), {"run": r, "seed": seed, "train_seconds": 0.0, "eval_accuracy": [], "train_loss": []}, None
    if paths and paths["npz"].exists() and paths["ckpt"].exists():
        # Dynamics are written before the checkpoint, so they cover at least the checkpoint's
        # epochs; later epochs are simply recorded again (training is deterministic).
        saved, saved_info = RunDynamics.load(paths["npz"]), read_json(paths["json"])
        resume = torch.load(paths["ckpt"], weights_only=False)
        done = resume["epoch"] + 1
        dyn, info = saved, {**saved_info, "eval_accuracy": saved_info["eval_accuracy"][:done], "train_loss": saved_info["train_loss"][:done]}
        dyn.epochs_done = done
    seed_everything(seed)
    task = get_task(inputs.task_type)
    tokenizer, model = load_model(cfg.model, inputs.label_names, task.name)
    model.to(device_for(world) if world.distributed else default_device())
    if inputs.example_index is None:
        recorder = by_feature = DynamicsRecorder(dyn, statistics=task.statistics)
    else:  # several features per example: record each feature, aggregate per example at epoch end
        recorder = FeatureRecorder(dyn, inputs.example_index, inputs.relevant, statistics=task.statistics)
        by_feature = recorder.features
    eval_encoded = inputs.eval_encoded
    if eval_encoded is None and inputs.eval_features is not None:
        eval_encoded = Encoded.one_per_example(inputs.eval_features, inputs.eval_labels)
    epoch_started = [time.perf_counter()]

    def on_epoch_end(epoch: int, state: dict) -> None:
        gather_epoch(world, by_feature, epoch)  # under DDP: every rank now holds the whole epoch
        missing = by_feature.missing(epoch)
        if len(missing):
            raise RuntimeError(f"run {r} epoch {epoch}: {len(missing)} {'features' if recorder is not by_feature else 'examples'} were never recorded")
        if recorder is not by_feature:
            recorder.end_epoch(epoch)
        info["train_seconds"] = round(info["train_seconds"] + time.perf_counter() - epoch_started[0], 2)
        info["train_loss"].append(round(state["loss"], 4))
        dyn.epochs_done = epoch + 1
        if world.is_main:
            if eval_encoded is not None:  # for QA the exact-match share: the accuracy of whole answers
                metrics = task.evaluate(model, tokenizer, inputs.eval_data, eval_encoded, bf16=cfg.train.bf16)
                info["eval_accuracy"].append(round(metrics[task.eval_metric], 4))
            if paths:
                write_json(paths["json"], info)
                dyn.save(paths["npz"])
                if epoch + 1 < n_epochs:
                    with atomic_path(paths["ckpt"]) as tmp:
                        torch.save(state, tmp)
                else:
                    paths["ckpt"].unlink(missing_ok=True)
        epoch_started[0] = time.perf_counter()

    fine_tune(
        model, tokenizer, inputs.features, inputs.labels, cfg.train, seed=seed,
        on_step=recorder.record, on_epoch_end=on_epoch_end, resume=resume,
        progress=f"run {r + 1}/{cfg.runs}" if inputs.progress else None, world=world, task=task,
    )
    return dyn, info


@dataclass
class Scoring:
    """What a scoring yields besides the dynamics files: the stacked dynamics, scores, subsets, report."""

    dynamics: dict[str, np.ndarray]
    scores: pd.DataFrame
    subsets: list[dict]
    learning_report: dict
    warnings: list[str]
    manifest: dict


def write_scoring(out_dir: str | Path | None, runs: list[RunDynamics], run_info: list[dict], *, labels: np.ndarray,
                  label_names: list[str], config: dict, example_ids: np.ndarray | None = None, manifest: dict | None = None,
                  baseline: tuple[float, str] | None = None, advice: dict[str, str] = diagnostics.CLI_ADVICE) -> Scoring:
    """Scores, subsets, learning report and warnings of R recorded runs; with `out_dir`, also write
    scores.parquet, subsets.json and manifest.json (status complete) there, which `hprune subsets`,
    `export`, `train --subset` and `compare` read. Used by HScorer and by hprune.hf.DynamicsTrainer.

    `config` needs "runs", "seed" and "seeds" (the score maths and the learning report use them);
    `example_ids` are the ids of the arrays' columns (default 0..N-1); `manifest` holds the other
    manifest fields (data source, columns and fingerprint, timings, ...); `baseline` the (training
    accuracy, name) of a trivial predictor when it is not the majority class (QA: never answering);
    `advice` how the warnings name the settings (default hprune's options).
    """
    arrays = stack_runs(runs)
    ids = np.arange(len(labels), dtype=np.int64) if example_ids is None else np.asarray(example_ids, dtype=np.int64)
    scores = score_table(**arrays, example_ids=ids, labels=labels, label_names=label_names, seed=config["seed"])
    subsets = describe_subsets(scores, config["runs"])
    report = diagnostics.learning_report(arrays["correct"], labels, seeds=config["seeds"],
                                         eval_accuracy=[i.get("eval_accuracy", []) for i in run_info], baseline=baseline)
    warnings = diagnostics.learning_warnings(report, scores, subsets, config["runs"], config=config, advice=advice)
    manifest = {
        "config": config,
        **(manifest or {}),
        "status": "complete",
        "runs_info": run_info,
        "phase1_train_seconds": round(sum(i.get("train_seconds", 0.0) for i in run_info), 1),
        "learning_report": report,
        "warnings": warnings,
        "versions": _versions(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        with atomic_path(out / SCORES_FILE) as tmp:
            scores.to_parquet(tmp, index=False)
        write_json(out / SUBSETS_FILE, subsets)
        write_json(out / MANIFEST_FILE, manifest)
    return Scoring(arrays, scores, subsets, report, warnings, manifest)


def load_scoring(out_dir: str | Path) -> tuple[dict, pd.DataFrame, list[dict]]:
    """Manifest, scores and subsets of a finished scoring folder."""
    out = Path(out_dir)
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.is_file():
        raise HpruneError(f"{out} is not an hprune scoring folder (no {MANIFEST_FILE}); run `hprune score --out {out}` first")
    try:
        manifest = read_json(manifest_path)
    except (ValueError, UnicodeDecodeError) as e:
        raise HpruneError(f"{manifest_path} is not valid JSON ({e}); run `hprune score` again with a new --out") from None
    if not isinstance(manifest, dict) or not _is_finished(manifest, out):
        raise HpruneError(f"the scoring in {out} did not finish; run the same `hprune score` command again to complete it")
    return manifest, pd.read_parquet(out / SCORES_FILE), read_json(out / SUBSETS_FILE)


def load_scored_data(manifest: dict, source: str | None = None, **kw) -> LabelledData:
    """Data read with the columns the scoring used: the scored training file (the default), or another
    split of the same task, e.g. its evaluation file (pass `label_names`). Multiple-choice and QA data
    (the manifest's task_type) come back as a tasks.TaskData."""
    task_type = manifest.get("task_type", "classification")
    if task_type != "classification":
        label_column = manifest["label_column"] if task_type == "multiple-choice" else None
        return load_task_data(source or manifest["train_source"], task_type=task_type, label_column=label_column)
    return load_data(
        source or manifest["train_source"],
        text_column=manifest["text_column"], pair_column=manifest["pair_column"], label_column=manifest["label_column"], **kw,
    )


def check_fingerprint(manifest: dict, data: LabelledData, *, allow_mismatch: bool = False) -> bool:
    """Refuse to apply scores to a different or reordered file (the worst silent failure). Returns True
    when the data differs and `allow_mismatch` lets it through, so that the caller can warn."""
    if data.fingerprint == manifest["fingerprint"]:
        return False
    n_scored = manifest.get("n_examples")
    if n_scored is not None and len(data) != n_scored:
        raise HpruneError(
            f"{data.source} has {len(data)} rows (fingerprint {data.fingerprint}) but the scored data has {n_scored} "
            f"(fingerprint {manifest['fingerprint']}, {manifest.get('train_source')}); scores apply row by row, so give "
            "the scored file (--allow-fingerprint-mismatch cannot help when the row count differs)"
        )
    if not allow_mismatch:
        raise HpruneError(
            f"{data.source} (fingerprint {data.fingerprint}) is not the data that was scored (fingerprint {manifest['fingerprint']}, "
            f"{manifest.get('train_source')}); give the same file in the same order, or pass --allow-fingerprint-mismatch"
        )
    return True


def _finished_scoring(out: Path, identity: dict) -> dict | None:
    """Refuse a folder that holds a scoring with other settings or data; its manifest if it holds this one, finished."""
    path = out / MANIFEST_FILE
    if not path.is_file():
        return None
    old = read_json(path)
    was = {**old.get("config", {}), "training data fingerprint": old.get("fingerprint"), "eval data fingerprint": old.get("eval_fingerprint")}
    now = {**identity["config"], "training data fingerprint": identity["fingerprint"], "eval data fingerprint": identity["eval_fingerprint"]}
    diff = [f"{k} ({was.get(k)}, now {v})" for k, v in now.items() if was.get(k) != v and k != "seeds"]
    if diff:
        raise HpruneError(f"{out} holds a scoring with different {', '.join(diff)}; use a new --out, or delete {out} to start over")
    return old if _is_finished(old, out) else None


def _is_finished(manifest: dict, out: Path) -> bool:
    """The scores are written before the manifest says complete, so both must be there."""
    return manifest.get("status") == "complete" and (out / SCORES_FILE).is_file()


def _data_info(train: LabelledData) -> dict:
    source = Path(train.source).expanduser()
    return {
        # absolute, so that export and compare find the file from any working directory
        "train_source": str(source.resolve()) if source.exists() else train.source,
        "n_examples": len(train),
        "text_column": train.text_column,
        "pair_column": train.pair_column,
        "label_column": train.label_column,
        "label_names": train.label_names,
        "task_type": task_of(train).name,
    }


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("hprune", "torch", "transformers", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
