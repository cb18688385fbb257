"""One scoring run (phase 1): fine-tune with seed `seed + r`, record every training step's verdict per example,
and, with an output folder, save its dynamics and a resume checkpoint at every epoch end, so an interrupted run
continues from its last finished epoch with identical results. In-process or as a remote task."""
from __future__ import annotations

import logging
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import ScoreConfig
from ..dynamics.record import DynamicsRecorder, FeatureRecorder, gather_epoch
from ..dynamics.store import RunDynamics, discard_run, finished_run, load_run, run_paths, save_run
from ..engine.distributed import World, device_for
from ..engine.loop import default_device, evaluate, fine_tune, run_conditions, seed_everything, setup_torch
from ..engine.models import load_model
from ..io import atomic_file
from ..tasks import Encoded, get_task

log = logging.getLogger(__name__)  # a damaged checkpoint; the CLI shows it as a `warning:` line


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
    # (0..n_examples-1) and whether its verdict counts for it (dynamics.record.aggregate_features).
    task_type: str = "classification"
    n_examples: int | None = None
    example_index: np.ndarray | None = None
    relevant: np.ndarray | None = None
    # Evaluation data and encoding when the metric needs more than labels (QA: contexts, answers, offsets).
    eval_data: object = None
    eval_encoded: Encoded | None = None


def score_run(inputs: RunInputs, r: int, out: Path | None, *, threads: int | None = None, job=None) -> tuple[RunDynamics, dict]:
    """Scoring run r (seed `config.seed + r`): fine-tune and record its dynamics. With `out`, its files
    are saved at every epoch end and an interrupted run resumes from its last checkpoint; a finished
    one is loaded, not trained. In-process or as a remote task (`threads`: the worker's torch threads).
    `job`: the whole scoring's progress bar, advanced at every training step and told what the run does."""
    if threads:
        setup_torch(threads)
    cfg, world = inputs.config, inputs.world
    seed, n_epochs = cfg.seeds()[r], cfg.scored_epochs()
    done = finished_run(out, r, n_epochs, tidy=world.is_main)
    if done is not None:
        return done
    paths = run_paths(out, r) if out else None
    dyn, resume = RunDynamics.empty(n_epochs, inputs.n_examples or len(inputs.labels)), None
    info = {"run": r, "seed": seed, "train_seconds": 0.0, "eval_accuracy": [], "train_loss": []}
    if paths and paths["npz"].exists() and paths["ckpt"].exists():
        # Dynamics are written before the checkpoint, so they cover at least the checkpoint's
        # epochs; later epochs are simply recorded again (training is deterministic).
        try:
            resume = torch.load(paths["ckpt"], weights_only=False)
        except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as e:
            log.warning(f"{paths['ckpt']} is unreadable ({str(e).splitlines()[0][:100]}); training run {r + 1} again from its first epoch")
            discard_run(out, r)
        else:
            dyn, info = load_run(out, r, epochs=resume["epoch"] + 1)
    run_name = f"run {r + 1}/{cfg.runs}"
    if job is not None:
        job.set_description(f"scoring, {run_name}: loading the model")
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

    def on_step(epoch: int, idx, logits, targets) -> None:
        recorder.record(epoch, idx, logits, targets)
        if job is not None:
            job.update()

    def on_epoch_end(epoch: int, state: dict) -> None:
        gather_epoch(world, by_feature, epoch)  # under DDP: every rank now holds the whole epoch
        missing = by_feature.missing(epoch)
        if len(missing):
            raise RuntimeError(f"run {r} epoch {epoch}: {len(missing)} {'features' if recorder is not by_feature else 'examples'} were never recorded")
        if recorder is not by_feature:
            recorder.end_epoch(epoch)
        info["train_seconds"] = round(info["train_seconds"] + time.perf_counter() - epoch_started[0], 2)
        info.update(run_conditions())  # what that time depends on, as of this epoch
        info["train_loss"].append(round(state["loss"], 4))
        dyn.epochs_done = epoch + 1
        if world.is_main:
            if eval_encoded is not None:  # for QA the exact-match share: the accuracy of whole answers
                if job is not None:
                    job.set_description(f"scoring, {run_name}: evaluating epoch {epoch + 1}")
                metrics = evaluate(task, model, tokenizer, inputs.eval_data, eval_encoded, bf16=cfg.train.bf16)
                info["eval_accuracy"].append(round(metrics[task.eval_metric], 4))
            if paths:
                save_run(out, r, dyn, info)
                if epoch + 1 < n_epochs:
                    with atomic_file(paths["ckpt"]) as f:
                        torch.save(state, f)
                else:
                    paths["ckpt"].unlink(missing_ok=True)
        epoch_started[0] = time.perf_counter()
        if job is not None:
            job.set_description(f"scoring, {run_name}")

    if job is not None:
        job.set_description(f"scoring, {run_name}")
    fine_tune(
        model, tokenizer, inputs.features, inputs.labels, cfg.train, seed=seed,
        on_step=on_step, on_epoch_end=on_epoch_end, resume=resume, stop_after=n_epochs,
        progress=run_name if inputs.progress else None, world=world, task=task,
    )
    return dyn, info
