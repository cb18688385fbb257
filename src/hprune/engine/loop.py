"""The fine-tuning loop, for any task kind (hprune.tasks): length-grouped dynamic padding, AdamW with a linear schedule, and a hook that
sees each training step's logits together with the batch's example ids (recording costs no extra
forward pass)."""
from __future__ import annotations

import contextlib
import os
import random
import time
from typing import Callable

import numpy as np
import torch

from ..config import TrainConfig
from ..tasks import Task, get_task
from .distributed import World, all_gather, all_sum, shard_batches
from .progress import progress_bar

MEGABATCH = 50  # batches per length-sorted pool: long enough to group lengths, short enough to stay random


def setup_torch(threads: int | None = None, deterministic: bool = True) -> None:
    """CPU settings that measured faster here, and deterministic kernels for reproducible scores. They are
    process-wide: set them for good only in a worker process hprune owns; elsewhere use `torch_settings`."""
    torch.set_flush_denormal(True)
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)


@contextlib.contextmanager
def torch_settings(threads: int | None = None, deterministic: bool = True):
    """`setup_torch` for the length of a fit in the caller's process, then the caller's own settings back
    (flushed subnormals would otherwise change the user's numpy and torch arithmetic after hprune returns)."""
    before = (flushes_denormals(), torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    setup_torch(threads, deterministic)
    try:
        yield
    finally:
        flush, n_threads, det, warn_only = before
        torch.set_flush_denormal(flush)
        torch.set_num_threads(n_threads)
        torch.use_deterministic_algorithms(det, warn_only=warn_only)


def flushes_denormals() -> bool:
    """Whether subnormal floats are flushed to zero now (torch has no getter for set_flush_denormal)."""
    return torch.tensor([1e-40]).mul(1.0).item() == 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def bf16_is_slow() -> bool:
    """True on a CPU without bf16 units (no avx512_bf16 or AMX): torch then falls back to scalar kernels,
    measured 20-30x slower than fp32 here (docs/performance.md)."""
    return not torch.cuda.is_available() and not torch.ops.mkldnn._is_mkldnn_bf16_supported()


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


RUN_CONDITIONS = ("device", "threads", "load")  # run_conditions' keys, for tables that hold them as columns


def run_conditions() -> dict:
    """What a training time depends on, to record beside it: the device (a GPU by its name), torch's threads,
    and the machine's 1-minute load average (None where the OS has none): another job on the same cores slows a run."""
    device = default_device()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    values = (torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu", torch.get_num_threads(),
              None if load is None else round(load, 2))
    return dict(zip(RUN_CONDITIONS, values))


def balanced_class_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's "balanced" weights, n / (K * count) over the K classes present; 0 for a class with
    no example. Every class then weighs the same in the loss, so a rare class is learned as early as a
    common one instead of only after the model has fitted the frequent classes."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights


def epoch_batches(lengths: np.ndarray, batch_size: int, *, seed: int, epoch: int, length_grouped: bool) -> list[np.ndarray]:
    """Index batches for one epoch: a fresh shuffle from (seed, epoch); with length grouping, each pool
    of MEGABATCH batches is sorted by length before it is cut, then the batch order is shuffled."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    if length_grouped:
        pool = batch_size * MEGABATCH
        order = np.concatenate(
            [chunk[np.argsort(-lengths[chunk], kind="stable")] for chunk in np.split(order, range(pool, len(order), pool))]
        )
    batches = np.split(order, range(batch_size, len(order), batch_size))
    if length_grouped:
        batches = [batches[k] for k in rng.permutation(len(batches))]
    return batches


def micro_batches_per_epoch(n_features: int, batch_size: int, world_size: int = 1) -> int:
    """The micro-batches one process trains per epoch (engine.distributed.shard_batches deals them out)."""
    return -(-int(np.ceil(n_features / batch_size)) // world_size)


StepHook = Callable[[int, np.ndarray, torch.Tensor, torch.Tensor], None]
EpochHook = Callable[[int, dict], None]


def fine_tune(
    model,
    tokenizer,
    features: list[dict],
    labels: np.ndarray,
    config: TrainConfig,
    *,
    seed: int,
    on_step: StepHook | None = None,
    on_epoch_end: EpochHook | None = None,
    resume: dict | None = None,
    progress: str | None = None,
    world: World | None = None,
    task: Task | None = None,
    stop_after: int | None = None,
    epoch_rows: list[np.ndarray] | None = None,
) -> dict:
    """Fine-tune `model` in place. `on_step(epoch, example_idx, logits, labels)` sees every micro-batch;
    `on_epoch_end(epoch, state)` gets the state a resume needs (model, optimizer, scheduler, RNG).
    Returns timing and loss figures.

    With a distributed `world` (one process per rank, the process group initialized), the model is
    wrapped in DistributedDataParallel and each rank trains on its share of every epoch's batches
    (engine.distributed.shard_batches): each optimizer step covers grad_accum x world size batches, and
    `on_step` sees only this rank's real micro-batches.

    `task` (hprune.tasks; default classification) collates, runs the head and gives the loss: for a
    multiple-choice or QA head, `features` are its features, `labels` their targets and `example_idx`
    feature indices. `stop_after` ends training after that many epochs of the `config.epochs` schedule (the
    learning rate still follows the whole schedule): a scoring's prefix at a fraction of the cost. `epoch_rows`: the
    feature indices trained in each epoch (RS2 draws a new subset every epoch); None: every feature, every epoch."""
    from transformers import get_linear_schedule_with_warmup

    task = task or get_task(None)
    world = world or World()
    device = next(model.parameters()).device
    lengths = task.lengths(features)
    labels_t = torch.tensor(labels, dtype=torch.long)  # a copy: arrays from Ray's object store are read-only
    weight = None
    if config.class_weight == "balanced" and task.name == "classification":  # per-class weights are a classifier's
        weight = torch.as_tensor(balanced_class_weights(np.asarray(labels), model.config.num_labels), dtype=torch.float32, device=device)

    def rows_of(epoch: int) -> np.ndarray:
        return np.arange(len(features)) if epoch_rows is None else np.asarray(epoch_rows[epoch])

    total_steps = sum(-(-micro_batches_per_epoch(len(rows_of(e)), config.batch_size, world.size) // config.grad_accum)
                      for e in range(config.epochs))
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    start_epoch = 0
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        rng = resume["torch_rng"]
        torch.set_rng_state(rng[world.rank] if isinstance(rng, list) else rng)  # a list: one state per rank
        if resume.get("cuda_rng") is not None and device.type == "cuda":
            torch.cuda.set_rng_state(resume["cuda_rng"][world.rank], device)  # dropout on a GPU draws from these
        start_epoch = resume["epoch"] + 1
    net = model
    if world.distributed:
        from torch.nn.parallel import DistributedDataParallel

        if resume is None:  # each rank its own dropout stream (DDP gives every rank rank 0's weights)
            torch.manual_seed(int(np.random.SeedSequence([seed, world.rank]).generate_state(1)[0]))
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    net.train()
    losses, started = [], time.perf_counter()
    n_seen = 0
    for epoch in range(start_epoch, min(config.epochs, stop_after or config.epochs)):
        rows = rows_of(epoch)
        batches = [rows[b] for b in epoch_batches(lengths[rows], config.batch_size, seed=seed, epoch=epoch, length_grouped=config.length_grouped)]
        steps = shard_batches(batches, config.grad_accum, world)
        bar = progress_bar(steps, desc=f"{progress or 'train'} epoch {epoch + 1}/{config.epochs}", disable=progress is None or not world.is_main)
        epoch_loss, epoch_seen = 0.0, 0
        for idx, numerator, denominator, sync in bar:
            inputs = task.collate(tokenizer, features, idx, device)
            y = labels_t[idx].to(device)
            with net.no_sync() if world.distributed and not sync else contextlib.nullcontext():
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.bf16):
                    logits = task.forward(net, inputs)
                loss = task.loss(logits, y, weight=weight)
                if on_step is not None and numerator:  # numerator 0: a DDP padding step, not recorded
                    on_step(epoch, idx, logits, y)
                # Scale by the micro-batch's share of the accumulated batch so a partial last batch weighs right.
                (loss * numerator / denominator).backward()
            if sync:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            if numerator:
                epoch_loss += loss.item() * len(idx)
                epoch_seen += len(idx)
        epoch_loss, epoch_seen = all_sum(world, [epoch_loss, epoch_seen])
        n_seen += epoch_seen
        losses.append(epoch_loss / len(rows))
        if on_epoch_end is not None:
            on_epoch_end(
                epoch,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": all_gather(world, torch.get_rng_state()) if world.distributed else torch.get_rng_state(),
                    # one state per rank, each of its own GPU (get_rng_state_all would save rank 0's view of every GPU)
                    "cuda_rng": all_gather(world, torch.cuda.get_rng_state(device)) if device.type == "cuda" else None,
                    "epoch": epoch,
                    "loss": losses[-1],
                },
            )
    seconds = time.perf_counter() - started
    return {"train_loss": losses, "train_seconds": seconds, "examples_per_second": n_seen / seconds if seconds else 0.0}


@torch.no_grad()
def predict(model, tokenizer, features: list[dict], *, batch_size: int = 128, bf16: bool = False, task: Task | None = None) -> np.ndarray | list:
    """Logits for every example, in input order; batches sorted by length so little is padding. For a
    task whose outputs differ in shape per feature (multiple choice, QA), a list of per-feature arrays."""
    task = task or get_task(None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    lengths = task.lengths(features)
    order = np.argsort(-lengths, kind="stable")
    out = [None] * len(features) if task.ragged else None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            batch = task.collate(tokenizer, features, idx, device)
            logits = task.forward(model, batch).float().cpu().numpy()
        if task.ragged:
            for i, row in zip(idx, task.unbatch(logits, batch)):
                out[i] = row
            continue
        if out is None:
            out = np.empty((len(features), logits.shape[-1]), dtype=np.float32)
        out[idx] = logits
    model.train(was_training)
    return out


def evaluate(task: Task, model, tokenizer, data, encoded, *, bf16: bool = False) -> dict[str, float]:
    """The task's metrics of `model` on `data` (encoded as `encoded`)."""
    return task.metrics_of(predict(model, tokenizer, encoded.features, bf16=bf16, task=task), data, encoded)
