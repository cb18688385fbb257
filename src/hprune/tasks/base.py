"""What a task kind supplies so that training, recording and scoring stay generic.

A task adapter turns the user's rows into examples, encodes them into features (one per example, or
several for a long QA context: each feature knows its example), collates a batch, runs the matching
head, and turns a training step's logits into per-feature statistics (correct, gold probability,
margin, EL2N). Scores are per example: features are aggregated to one record per example per epoch
(dynamics.record.FeatureRecorder). Evaluation metrics are the task's own.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..data import TokenArrays
from ..errors import HpruneError



def collate(tokenizer, features: list[dict], indices: np.ndarray, device) -> dict[str, torch.Tensor]:
    batch = tokenizer.pad([features[i] for i in indices], return_tensors="pt")
    return {k: v.to(device) for k, v in batch.items()}


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


def as_list(value) -> list | None:
    """A list cell as a list (parquet gives numpy arrays); None when the cell is not list-like."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    return None


def rows_message(source: str, what: str, rows: list[int], fix: str) -> HpruneError:
    shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    return HpruneError(f"{source}: {what} at row {shown}; {fix}")


def require_columns(frame, source: str, columns: list[str], task_type: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise HpruneError(f"{source} has no column {', '.join(map(repr, missing))}, which {task_type} data needs; "
                          f"its columns are {', '.join(map(str, frame.columns))}")


def content_fingerprint(task_type: str, rows) -> str:
    """sha256 of the task kind and the rows' trained-on content in order, shortened to 16 hex digits."""
    h = hashlib.sha256(task_type.encode() + b"\n")
    for row in rows:
        h.update(json.dumps(row, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def is_text(v) -> bool:
    return isinstance(v, str) and bool(v.strip())


@dataclass
class TaskData:
    """A multiple-choice or extractive-QA dataset as the user gave it, plus its parsed examples.

    It answers what the rest of hprune asks of `data.LabelledData`: rows and records for a faithful
    export, `labels`/`label_names` for the per-class tables (the gold choice index; answerable or not),
    a fingerprint of the content trained on, and the column names for the manifest."""

    task_type: str
    source: str
    frame: pd.DataFrame  # the user's rows and columns, unchanged
    records: Sequence[dict] | None  # the parsed JSON objects (data.tables.JsonLines), for a byte-faithful JSONL export
    examples: list  # task-specific parsed examples, one per row
    labels: np.ndarray  # per-class table label of each example: an index into label_names
    label_names: list[str]
    fingerprint: str
    text_column: str | None = None
    pair_column: str | None = None
    label_column: str | None = None

    @property
    def example_ids(self) -> np.ndarray:
        return np.arange(len(self.examples), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.examples)


@dataclass
class Encoded:
    """Encoded examples: model-ready features (unpadded; classification's are flat token arrays,
    data.TokenArrays, the other kinds' a dict per feature) with their training targets.

    `example_index[f]` is the position (0..n_examples-1, in the order of the encoded ids) of feature
    f's example. `relevant` marks the features whose verdict counts for their example when an example
    has several (None: one feature per example). `offsets` (QA) map each feature's tokens back to
    characters of the context, -1 outside it."""

    features: list[dict] | TokenArrays
    targets: np.ndarray
    example_index: np.ndarray
    n_examples: int
    relevant: np.ndarray | None = None
    offsets: list[np.ndarray] | None = None
    ids: np.ndarray | None = None  # the example ids encoded, in order

    @property
    def grouped(self) -> bool:
        return self.relevant is not None

    @classmethod
    def one_per_example(cls, features: list[dict] | TokenArrays, targets) -> "Encoded":
        n = len(features)
        return cls(features=features, targets=np.asarray(targets), example_index=np.arange(n), n_examples=n)


class Task:
    """The classification behaviour; other kinds override what differs."""

    name = "classification"
    metrics: tuple[str, ...] = ("accuracy", "macro_f1", "mcc")
    default_metric = "accuracy"
    eval_metric = "accuracy"  # the per-epoch evaluation figure of the learning report
    ragged = False  # per-feature outputs of different shapes (predict returns a list)

    # ---- data ----
    def load(self, source: str, **kw):
        raise NotImplementedError

    def encode(self, tokenizer, data, max_length: int, ids: np.ndarray | None = None, cache_dir=None) -> Encoded:
        """`ids`: encode only these examples; `cache_dir`: where the encoding of the whole data may be cached and
        found again (classification's; the other kinds, small data, encode in memory)."""
        raise NotImplementedError

    def baseline(self, data) -> tuple[float, str] | None:
        """The training accuracy a trivial predictor gets, and its name; None: the majority class."""
        return None

    # ---- training ----
    def lengths(self, features: list[dict]) -> np.ndarray:
        return np.array([len(f["input_ids"]) for f in features])

    def collate(self, tokenizer, features: list[dict], indices: np.ndarray, device) -> dict[str, torch.Tensor]:
        return collate(tokenizer, features, indices, device)

    def forward(self, net, inputs: dict) -> torch.Tensor:
        return net(**inputs).logits

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Cross-entropy; with class weights, the weighted mean over the batch."""
        return torch.nn.functional.cross_entropy(logits.float(), targets, weight=weight)

    def statistics(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return step_statistics(logits, targets)

    def unbatch(self, logits: np.ndarray, inputs: dict) -> list[np.ndarray]:
        """Per-feature outputs of a batch (ragged tasks only)."""
        raise NotImplementedError

    # ---- evaluation ----
    def metrics_of(self, outputs, data, encoded: Encoded) -> dict[str, float]:
        """The task's metrics from the model's outputs on `encoded` (engine.loop.evaluate runs the model)."""
        from ..metrics import classification_metrics

        return classification_metrics(encoded.targets, outputs)
