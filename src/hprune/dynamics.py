"""Training dynamics: what each training step saw for each example, keyed by example id.

Per (run, epoch, example) hprune keeps 7 bytes: correct (1 byte), and as float16 the gold-label
probability, the logit margin (gold logit minus the largest other logit) and the EL2N error norm.
One file per run, rewritten atomically at each epoch end, so a crash never leaves a torn file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path

FIELDS = ("correct", "probs", "margins", "el2n")


def step_statistics(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Correctness, gold probability, margin and EL2N of one batch, from logits the step already has."""
    logits = logits.detach().float()
    probs = logits.softmax(-1)
    gold_logit = logits.gather(1, labels[:, None])[:, 0]
    other = logits.scatter(1, labels[:, None], float("-inf"))
    one_hot = torch.nn.functional.one_hot(labels, logits.shape[-1]).float()
    return {
        "correct": logits.argmax(-1) == labels,
        "probs": probs.gather(1, labels[:, None])[:, 0],
        "margins": gold_logit - other.max(-1).values,
        "el2n": (probs - one_hot).norm(dim=-1),
    }


@dataclass
class RunDynamics:
    """The dynamics of one run: arrays of shape (epochs, examples), and how many epochs are filled."""

    correct: np.ndarray
    probs: np.ndarray
    margins: np.ndarray
    el2n: np.ndarray
    epochs_done: int = 0

    @classmethod
    def empty(cls, n_epochs: int, n_examples: int) -> "RunDynamics":
        shape = (n_epochs, n_examples)
        return cls(
            correct=np.zeros(shape, dtype=np.uint8),
            probs=np.zeros(shape, dtype=np.float16),
            margins=np.zeros(shape, dtype=np.float16),
            el2n=np.zeros(shape, dtype=np.float16),
        )

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, epochs_done=self.epochs_done, **{k: getattr(self, k) for k in FIELDS})

    @classmethod
    def load(cls, path: Path) -> "RunDynamics":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in FIELDS}, epochs_done=int(z["epochs_done"]))


class DynamicsRecorder:
    """Writes each training step's statistics into a run's arrays at the batch's example ids.

    Recording by id (never by position in a sampler) keeps it right under reshuffling, a partial
    last batch, gradient accumulation and several processes. Recording an id twice in one epoch
    is a bug in the caller and raises.
    """

    def __init__(self, dynamics: RunDynamics):
        self.dynamics = dynamics
        self.seen = np.zeros(dynamics.correct.shape, dtype=bool)

    def record(self, epoch: int, example_ids, logits: torch.Tensor, labels: torch.Tensor) -> None:
        ids = np.asarray(example_ids.cpu() if torch.is_tensor(example_ids) else example_ids, dtype=np.int64)
        if self.seen[epoch, ids].any() or len(np.unique(ids)) != len(ids):
            raise RuntimeError(f"example recorded twice in epoch {epoch}: ids {ids[self.seen[epoch, ids]][:5]}")
        self.seen[epoch, ids] = True
        for name, values in step_statistics(logits, labels).items():
            getattr(self.dynamics, name)[epoch, ids] = values.cpu().numpy()

    def missing(self, epoch: int) -> np.ndarray:
        """Ids not recorded in an epoch (should be none once the epoch is over)."""
        return np.flatnonzero(~self.seen[epoch])


def stack_runs(runs: list[RunDynamics]) -> dict[str, np.ndarray]:
    """The (runs, epochs, examples) arrays the score functions take."""
    return {k: np.stack([getattr(r, k) for r in runs]) for k in FIELDS}
