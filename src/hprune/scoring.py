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
from .data import LabelledData
from .dynamics import DynamicsRecorder, RunDynamics, stack_runs
from .errors import HpruneError
from .io import atomic_path, ensure_writable, read_json, write_json
from .metrics import classification_metrics
from .models import load_classifier
from .scores import score_table
from .subsets import describe_subsets
from .training import TrainConfig, default_device, encode, fine_tune, predict, seed_everything, setup_torch

SCORES_FILE, SUBSETS_FILE, MANIFEST_FILE = "scores.parquet", "subsets.json", "manifest.json"


@dataclass
class ScoreConfig:
    """What defines a scoring: changing any of it makes earlier runs in the folder unusable."""

    model: str = "minilm"
    runs: int = 6
    seed: int = 0
    train: TrainConfig = field(default_factory=TrainConfig)

    def seeds(self) -> list[int]:
        return [self.seed + r for r in range(self.runs)]

    def to_dict(self) -> dict:
        return {"model": self.model, "runs": self.runs, "seed": self.seed, "seeds": self.seeds(), **self.train.to_dict()}


class HScorer:
    """Score a labelled dataset: `fit` sets `dynamics_`, `scores_`, `subsets_`, `learning_report_`, `warnings_`."""

    def __init__(self, config: ScoreConfig, *, out_dir: str | Path | None = None, progress: bool = True, threads: int | None = None):
        self.config = config
        self.out_dir = out_dir
        self.progress = progress
        self.threads = threads

    def fit(self, train: LabelledData, eval_data: LabelledData | None = None) -> "HScorer":
        cfg = self.config
        if cfg.runs < 1 or cfg.train.epochs < 1:
            raise HpruneError(f"--runs and --epochs must be at least 1 (got {cfg.runs} and {cfg.train.epochs})")
        setup_torch(self.threads)
        out = Path(self.out_dir) if self.out_dir is not None else None
        if out is None:
            return self._fit(train, eval_data, None)
        ensure_writable(out)
        try:
            with FileLock(out / ".lock", timeout=0):
                return self._fit(train, eval_data, out)
        except Timeout:
            raise HpruneError(f"another hprune score is running on {out}; wait for it or use another --out") from None

    def _fit(self, train: LabelledData, eval_data: LabelledData | None, out: Path | None) -> "HScorer":
        cfg = self.config
        started = time.perf_counter()
        identity = {"config": cfg.to_dict(), "fingerprint": train.fingerprint, "eval_fingerprint": eval_data.fingerprint if eval_data else None}
        if out is not None:
            _check_same_scoring(out, identity)
            write_json(out / MANIFEST_FILE, {**identity, "status": "running", **_data_info(train)})
        device = default_device()
        tokenizer, _ = load_classifier(cfg.model, train.label_names)  # fails fast on a bad model
        features = encode(tokenizer, train.texts, train.pairs, cfg.train.max_length)
        eval_features = encode(tokenizer, eval_data.texts, eval_data.pairs, cfg.train.max_length) if eval_data else None
        runs, run_info = [], []
        for r, seed in enumerate(cfg.seeds()):
            dyn, info = self._run(r, seed, train, features, tokenizer, eval_data, eval_features, device, out)
            runs.append(dyn)
            run_info.append(info)
        arrays = stack_runs(runs)
        self.dynamics_ = arrays
        self.scores_ = score_table(**arrays, example_ids=train.example_ids, labels=train.labels, label_names=train.label_names, seed=cfg.seed)
        self.subsets_ = describe_subsets(self.scores_, cfg.runs)
        self.learning_report_ = diagnostics.learning_report(
            arrays["correct"], train.labels, seeds=cfg.seeds(), eval_accuracy=[i.get("eval_accuracy", []) for i in run_info]
        )
        self.warnings_ = diagnostics.learning_warnings(self.learning_report_, self.scores_, self.subsets_, cfg.runs)
        self.manifest_ = {
            **identity,
            "status": "complete",
            **_data_info(train),
            "eval_source": eval_data.source if eval_data else None,
            "device": str(device),
            "runs_info": run_info,
            "seconds": round(time.perf_counter() - started, 1),
            "phase1_train_seconds": round(sum(i["train_seconds"] for i in run_info), 1),
            "learning_report": self.learning_report_,
            "warnings": self.warnings_,
            "versions": _versions(),
        }
        if out is not None:
            with atomic_path(out / SCORES_FILE) as tmp:
                self.scores_.to_parquet(tmp, index=False)
            write_json(out / SUBSETS_FILE, self.subsets_)
            write_json(out / MANIFEST_FILE, self.manifest_)
        return self

    def _run(self, r, seed, train, features, tokenizer, eval_data, eval_features, device, out):
        """One scoring run, resumed from its last checkpoint when the folder holds one."""
        cfg = self.config
        n_epochs = cfg.train.epochs
        paths = {k: out / "dynamics" / f"run-{r}.{k}" for k in ("npz", "json", "ckpt")} if out else None
        dyn, info, resume = RunDynamics.empty(n_epochs, len(train)), {"run": r, "seed": seed, "train_seconds": 0.0, "eval_accuracy": [], "train_loss": []}, None
        if paths and paths["npz"].exists():
            saved, saved_info = RunDynamics.load(paths["npz"]), read_json(paths["json"])
            if saved.epochs_done == n_epochs:
                return saved, saved_info
            if paths["ckpt"].exists():
                # Dynamics are written before the checkpoint, so they cover at least the checkpoint's
                # epochs; later epochs are simply recorded again (training is deterministic).
                resume = torch.load(paths["ckpt"], weights_only=False)
                done = resume["epoch"] + 1
                dyn, info = saved, {**saved_info, "eval_accuracy": saved_info["eval_accuracy"][:done], "train_loss": saved_info["train_loss"][:done]}
                dyn.epochs_done = done
        seed_everything(seed)
        _, model = load_classifier(cfg.model, train.label_names)
        model.to(device)
        recorder = DynamicsRecorder(dyn)
        epoch_started = [time.perf_counter()]

        def on_epoch_end(epoch: int, state: dict) -> None:
            missing = recorder.missing(epoch)
            if len(missing):
                raise RuntimeError(f"run {r} epoch {epoch}: {len(missing)} examples were never recorded")
            info["train_seconds"] = round(info["train_seconds"] + time.perf_counter() - epoch_started[0], 2)
            info["train_loss"].append(round(state["loss"], 4))
            if eval_data is not None:
                logits = predict(model, tokenizer, eval_features, bf16=cfg.train.bf16)
                info["eval_accuracy"].append(round(classification_metrics(eval_data.labels, logits)["accuracy"], 4))
            dyn.epochs_done = epoch + 1
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
            model, tokenizer, features, train.labels, cfg.train, seed=seed,
            on_step=recorder.record, on_epoch_end=on_epoch_end, resume=resume,
            progress=f"run {r + 1}/{cfg.runs}" if self.progress else None,
        )
        return dyn, info


def load_scoring(out_dir: str | Path) -> tuple[dict, pd.DataFrame, list[dict]]:
    """Manifest, scores and subsets of a finished scoring folder."""
    out = Path(out_dir)
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.is_file():
        raise HpruneError(f"{out} is not an hprune scoring folder (no {MANIFEST_FILE}); run `hprune score --out {out}` first")
    manifest = read_json(manifest_path)
    if manifest.get("status") != "complete" or not (out / SCORES_FILE).is_file():
        raise HpruneError(f"the scoring in {out} did not finish; run the same `hprune score` command again to complete it")
    return manifest, pd.read_parquet(out / SCORES_FILE), read_json(out / SUBSETS_FILE)


def check_fingerprint(manifest: dict, data: LabelledData, *, allow_mismatch: bool = False) -> None:
    """Refuse to apply scores to a different or reordered file (the worst silent failure)."""
    if data.fingerprint != manifest["fingerprint"] and not allow_mismatch:
        raise HpruneError(
            f"{data.source} (fingerprint {data.fingerprint}) is not the data that was scored (fingerprint {manifest['fingerprint']}, "
            f"{manifest.get('train_source')}); give the same file in the same order, or pass --allow-fingerprint-mismatch"
        )


def _check_same_scoring(out: Path, identity: dict) -> None:
    path = out / MANIFEST_FILE
    if not path.is_file():
        return
    old = read_json(path)
    diff = [k for k in identity["config"] if old.get("config", {}).get(k) != identity["config"][k]]
    if old.get("fingerprint") != identity["fingerprint"]:
        diff.append("training data")
    if old.get("eval_fingerprint") != identity["eval_fingerprint"]:
        diff.append("eval data")
    if diff:
        raise HpruneError(f"{out} holds a scoring with different {', '.join(diff)}; use a new --out, or delete {out} to start over")


def _data_info(train: LabelledData) -> dict:
    return {
        "train_source": train.source,
        "n_examples": len(train),
        "text_column": train.text_column,
        "pair_column": train.pair_column,
        "label_column": train.label_column,
        "label_names": train.label_names,
    }


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("hprune", "torch", "transformers", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
