"""A run's training dynamics and its files: the single writer and reader of OUT/dynamics/run-K.*.

Per (run, epoch, example) hprune keeps 7 bytes: correct (1 byte), and as float16 the gold-label
probability, the logit margin (gold logit minus the largest other logit) and the EL2N error norm.
One file per run, rewritten atomically at each epoch end, so a crash never leaves a torn file; beside
it run-K.json (timings, losses, eval accuracy) and, while the run is unfinished, a resume checkpoint.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import atomic_file, file_digest, file_problem, read_json, write_json

FIELDS = ("correct", "probs", "margins", "el2n")


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
        with atomic_file(path) as f:
            np.savez(f, epochs_done=self.epochs_done, **{k: getattr(self, k) for k in FIELDS})

    @classmethod
    def load(cls, path: Path) -> "RunDynamics":
        with np.load(path) as z:
            return cls(**{k: z[k] for k in FIELDS}, epochs_done=int(z["epochs_done"]))


def stack_runs(runs: list[RunDynamics]) -> dict[str, np.ndarray]:
    """The (runs, epochs, examples) arrays the score functions take."""
    return {k: np.stack([getattr(r, k) for r in runs]) for k in FIELDS}


def run_paths(out: Path, r: int) -> dict[str, Path]:
    """Run r's files: dynamics (.npz), timings and losses (.json), resume checkpoint (.ckpt)."""
    return {k: Path(out) / "dynamics" / f"run-{r}.{k}" for k in ("npz", "json", "ckpt")}


def save_run(out: Path, r: int, dynamics: RunDynamics, info: dict) -> None:
    """Write run r's info, then its dynamics (a resume trusts the dynamics to cover the checkpoint)."""
    paths = run_paths(out, r)
    paths["npz"].parent.mkdir(exist_ok=True)  # not its parents: a folder removed under the job is an error
    write_json(paths["json"], info)
    dynamics.save(paths["npz"])


def load_run(out: Path, r: int, *, epochs: int | None = None) -> tuple[RunDynamics, dict]:
    """Run r's saved dynamics and info; with `epochs`, cut back to its first `epochs` epochs (a resume
    that continues from an earlier epoch records the later ones again)."""
    paths = run_paths(out, r)
    dynamics, info = RunDynamics.load(paths["npz"]), read_json(paths["json"])
    if epochs is not None:
        dynamics.epochs_done = epochs
        info = {**info, "eval_accuracy": info["eval_accuracy"][:epochs], "train_loss": info["train_loss"][:epochs]}
    return dynamics, info


def epochs_saved(out: Path | None, r: int) -> int:
    """How many epochs of run r the folder holds (0 without a file): what a resume will not train again."""
    path = run_paths(out, r)["npz"] if out is not None else None
    if path is None or not path.exists():
        return 0
    with np.load(path) as z:
        return int(z["epochs_done"])


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


def run_digests(out: Path, r: int) -> dict[str, dict]:
    """Size and sha256 of run r's dynamics and info files, by their path in `out`: what the manifest records."""
    return {f"dynamics/{p.name}": file_digest(p) for k, p in run_paths(out, r).items() if k != "ckpt" and p.is_file()}


def run_problem(out: Path, r: int, recorded: dict[str, dict]) -> str | None:
    """Why run r's saved files cannot be trusted (missing although recorded, changed since `recorded`, or
    unreadable), or None: a run found bad is trained again, with the same result."""
    paths = run_paths(out, r)
    for kind in ("npz", "json"):
        digest = recorded.get(f"dynamics/{paths[kind].name}")
        problem = file_problem(paths[kind], digest) if digest else None
        if problem:
            return problem
    if not paths["npz"].exists():
        return None  # not started, or killed before its first epoch ended: trained from the start anyway
    for path, load in ((paths["npz"], RunDynamics.load), (paths["json"], read_json)):
        try:
            load(path)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
            return f"{path} is unreadable ({type(e).__name__}: {str(e)[:100]})"
    return None


def discard_run(out: Path, r: int) -> None:
    """Remove run r's files, so that it trains again from its first epoch."""
    for path in run_paths(out, r).values():
        path.unlink(missing_ok=True)
