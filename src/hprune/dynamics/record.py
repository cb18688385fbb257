"""Recording training dynamics: what each training step saw for each example, written into a run's
arrays (dynamics.store) by example id; per-feature records aggregated per example (QA); under DDP the
ranks' records gathered at each epoch end."""
from __future__ import annotations

import numpy as np
import torch

from ..engine.distributed import World, all_gather
from ..tasks.base import step_statistics
from .store import FIELDS, RunDynamics

class DynamicsRecorder:
    """Writes each training step's statistics into a run's arrays at the batch's example ids.

    Recording by id (never by position in a sampler) keeps it right under reshuffling, a partial
    last batch, gradient accumulation and several processes. Recording an id twice in one epoch
    is a bug in the caller and raises; with `duplicates="first"` (for samplers that pad an epoch
    with repeated examples) the first presentation is kept and repeats are ignored. `step` holds,
    for each id, the index of the record call in its epoch that recorded it (DDP merges by it).
    `statistics(logits, labels)` turns a step's logits into the four fields (default: a classifier's).
    """

    def __init__(self, dynamics: RunDynamics, *, duplicates: str = "raise", statistics=step_statistics):
        if duplicates not in ("raise", "first"):
            raise ValueError(f"duplicates must be 'raise' or 'first', got {duplicates!r}")
        self.dynamics = dynamics
        self.duplicates = duplicates
        self.statistics = statistics
        self.seen = np.zeros(dynamics.correct.shape, dtype=bool)
        self.step = np.zeros(dynamics.correct.shape[1], dtype=np.int32)
        self._epoch, self._calls = -1, 0

    def record(self, epoch: int, example_ids, logits: torch.Tensor, labels: torch.Tensor) -> None:
        ids = np.asarray(example_ids.cpu() if torch.is_tensor(example_ids) else example_ids, dtype=np.int64)
        if epoch != self._epoch:
            self._epoch, self._calls = epoch, 0
        if self.seen[epoch, ids].any() or len(np.unique(ids)) != len(ids):
            if self.duplicates == "raise":
                raise RuntimeError(f"example recorded twice in epoch {epoch}: ids {ids[self.seen[epoch, ids]][:5]}")
            _, first = np.unique(ids, return_index=True)
            rows = np.sort(first)[~self.seen[epoch, ids[np.sort(first)]]]
            ids, logits, labels = ids[rows], logits[torch.as_tensor(rows)], labels[torch.as_tensor(rows)]
        self.seen[epoch, ids] = True
        self.step[ids] = self._calls
        self._calls += 1
        for name, values in self.statistics(logits, labels).items():
            getattr(self.dynamics, name)[epoch, ids] = values.cpu().numpy()

    def missing(self, epoch: int) -> np.ndarray:
        """Ids not recorded in an epoch (should be none once the epoch is over)."""
        return np.flatnonzero(~self.seen[epoch])


def aggregate_features(stats: dict[str, np.ndarray], example_index: np.ndarray, relevant: np.ndarray, n_examples: int) -> dict[str, np.ndarray]:
    """One record per example from its features' records of one epoch (the rule for long QA contexts
    split into several features). An example's relevant features are those marked `relevant` (for QA:
    the features whose window holds the answer, or all its features when none does). The example is
    correct iff every relevant feature is; its gold probability and margin are the minimum over its
    relevant features and its EL2N the maximum: the worst relevant feature speaks for the example."""
    rel = np.asarray(relevant, dtype=bool)
    ex = np.asarray(example_index)[rel]
    if len(np.unique(ex)) != n_examples:
        raise ValueError("every example needs at least one relevant feature")
    out = {"correct": np.ones(n_examples, dtype=bool), "probs": np.full(n_examples, np.inf),
           "margins": np.full(n_examples, np.inf), "el2n": np.full(n_examples, -np.inf)}
    np.logical_and.at(out["correct"], ex, stats["correct"][rel].astype(bool))
    np.minimum.at(out["probs"], ex, stats["probs"][rel].astype(np.float64))
    np.minimum.at(out["margins"], ex, stats["margins"][rel].astype(np.float64))
    np.maximum.at(out["el2n"], ex, stats["el2n"][rel].astype(np.float64))
    return out


class FeatureRecorder:
    """Records per feature when an example has several (QA), and aggregates at each epoch end.

    `features` is a DynamicsRecorder over feature indices: each feature is recorded exactly once per
    epoch (a feature seen twice raises, as for examples), and DDP gathers it as it gathers examples.
    `end_epoch(epoch)` writes one record per example into `dynamics` by `aggregate_features`."""

    def __init__(self, dynamics: RunDynamics, example_index: np.ndarray, relevant: np.ndarray, *, statistics=step_statistics):
        self.dynamics = dynamics
        self.example_index = np.asarray(example_index, dtype=np.int64)
        self.relevant = np.asarray(relevant, dtype=bool)
        self.features = DynamicsRecorder(RunDynamics.empty(dynamics.correct.shape[0], len(self.example_index)), statistics=statistics)

    def record(self, epoch: int, feature_ids, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.features.record(epoch, feature_ids, logits, labels)

    def missing(self, epoch: int) -> np.ndarray:
        """Features not recorded in an epoch."""
        return self.features.missing(epoch)

    def end_epoch(self, epoch: int) -> None:
        per_feature = {k: getattr(self.features.dynamics, k)[epoch] for k in FIELDS}
        for k, values in aggregate_features(per_feature, self.example_index, self.relevant, self.dynamics.correct.shape[1]).items():
            getattr(self.dynamics, k)[epoch] = values


def gather_epoch(world: World, recorder: DynamicsRecorder, epoch: int) -> None:
    """Give every rank the whole epoch: all-gather what each rank recorded and write it into each
    rank's arrays. An example recorded on two ranks is an error under `duplicates="raise"`; under
    "first" (samplers that pad with repeated examples) its first presentation is kept: the lowest
    (step within the epoch, rank), since batch k of the epoch is step k // size of rank k % size."""
    if not world.distributed:
        return
    dyn = recorder.dynamics
    ids = np.flatnonzero(recorder.seen[epoch])
    mine = {"ids": ids, "step": recorder.step[ids], **{k: getattr(dyn, k)[epoch, ids] for k in FIELDS}}
    parts = all_gather(world, mine)
    ids = np.concatenate([p["ids"] for p in parts])
    step = np.concatenate([p["step"] for p in parts])
    rank = np.concatenate([np.full(len(p["ids"]), r) for r, p in enumerate(parts)])
    order = np.lexsort((rank, step))  # by step, then rank: presentation order
    _, first = np.unique(ids[order], return_index=True)
    if len(first) != len(ids) and recorder.duplicates == "raise":
        twice = np.setdiff1d(np.arange(len(ids)), first)
        raise RuntimeError(f"epoch {epoch}: examples recorded on two ranks: ids {np.unique(ids[order][twice])[:5]}")
    keep = order[first]
    for k in FIELDS:
        getattr(dyn, k)[epoch, ids[keep]] = np.concatenate([p[k] for p in parts])[keep]
    recorder.seen[epoch, ids[keep]] = True
