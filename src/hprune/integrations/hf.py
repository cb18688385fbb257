"""H-scores from your own `transformers.Trainer` script, two ways; both record, from the logits every training
step already computes (no extra forward pass), each example's correctness, gold-label probability, margin and
EL2N, keyed by its example id, and write what `hprune score` writes: OUT/dynamics/run-K.npz + run-K.json after
every epoch, and once two or more runs are in OUT, scores.parquet, subsets.json and manifest.json, so
`hprune subsets`, `export`, `train --subset` and `compare` work on OUT.

`DynamicsTrainer` is a Trainer: the model's own loss, any collator and sampler; the example id is column
`example_id` of the training dataset (added as the row number when missing), taken out of each feature before
the collator and put back into the batch, and out of the batch before the model sees it.

    trainer = DynamicsTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                              scoring_dir="runs/x", run=0, data=load_data("train.jsonl"))

`DynamicsHook` leaves the Trainer as it is: a callback and a loss function (`compute_loss_func`, which sees
the step's outputs and labels but not the batch), with the example ids packed into the labels of the training
set (id x classes + label), which every collator keeps and the Trainer hands to the loss function untouched.
The loss is then the hook's cross-entropy (the model's own loss is not computed), classification only.

    hook = DynamicsHook("runs/x", run=0, data=load_data("train.jsonl"))
    trainer = Trainer(model=model, args=args, train_dataset=hook.with_ids(ds), processing_class=tok,
                      compute_loss_func=hook.compute_loss, callbacks=[hook])

Either way any sampler, gradient accumulation and DDP (accelerate's padding of the last batches: the first
presentation of an example counts) are fine because records are keyed by id; the epoch is the trainer state's.
"""
from __future__ import annotations

import enum
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from transformers import Trainer, TrainerCallback

from ..artifacts import data_info, write_scoring
from ..data import LabelledData
from ..diagnostics import TRAINER_ADVICE
from ..dynamics.record import DynamicsRecorder, gather_epoch
from ..dynamics.store import RunDynamics, finished_run, load_run, run_paths, save_run
from ..engine.distributed import all_gather, current_world
from ..engine.loop import run_conditions
from ..errors import HpruneError
from ..io import write_json

ID_COLUMN = "example_id"
# The TrainingArguments that make a run's dynamics comparable with another run's (the seed aside).
_RUN_CONFIG = {"epochs": "num_train_epochs", "lr": "learning_rate", "batch_size": "per_device_train_batch_size",
               "grad_accum": "gradient_accumulation_steps", "warmup_steps": "warmup_steps", "weight_decay": "weight_decay",
               "lr_scheduler": "lr_scheduler_type", "optim": "optim", "bf16": "bf16", "sampling": "train_sampling_strategy"}


class KeepIds:
    """Wraps a data collator: takes the example id out of each feature, collates the rest, and adds
    the ids to the batch as a tensor, so no collator can drop or mangle them."""

    def __init__(self, collator, column: str = ID_COLUMN):
        self.collator, self.column = collator, column

    def __call__(self, features):
        if not features or not isinstance(features[0], Mapping) or self.column not in features[0]:
            return self.collator(features)
        ids = torch.as_tensor([int(f[self.column]) for f in features], dtype=torch.long)
        batch = self.collator([{k: v for k, v in f.items() if k != self.column} for f in features])
        batch[self.column] = ids
        return batch


class WithIds(torch.utils.data.Dataset):
    """A map-style dataset of dicts, each item given its index as example id."""

    def __init__(self, dataset, column: str = ID_COLUMN):
        self.dataset, self.column = dataset, column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        return {**self.dataset[i], self.column: i}


def dataset_with_ids(dataset, data: LabelledData | None = None, column: str = ID_COLUMN):
    """The training dataset with an example id per item (column `column`, the row number when missing), and
    the sorted ids it holds, checked: distinct, non-negative, rows of `data` when given."""
    if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
        raise HpruneError("recording needs a training dataset with a length (map-style), to know every example's id")
    if hasattr(dataset, "column_names") and hasattr(dataset, "add_column"):  # datasets.Dataset
        if column not in dataset.column_names:
            dataset = dataset.add_column(column, list(range(len(dataset))))
        ids = np.asarray(dataset[column], dtype=np.int64)
    elif len(dataset) and isinstance(dataset[0], Mapping) and column in dataset[0]:
        ids = np.array([int(dataset[i][column]) for i in range(len(dataset))], dtype=np.int64)
    else:
        dataset = WithIds(dataset, column)
        ids = np.arange(len(dataset), dtype=np.int64)
    if len(np.unique(ids)) != len(ids) or (len(ids) and ids.min() < 0):
        raise HpruneError(f"column {column!r} must hold distinct non-negative example ids (rows of your data)")
    if data is not None and len(ids) and ids.max() >= len(data):
        raise HpruneError(f"example id {ids.max()} is not a row of {data.source} ({len(data)} rows)")
    return dataset, np.sort(ids)


class DynamicsRecording(TrainerCallback):
    """One run's recording, as a TrainerCallback that owns its state (the run's arrays, labels, timings) and gets
    the loop's state as arguments: it allocates at train begin, takes the epoch from the trainer state, gathers
    the ranks and saves the run at each epoch end, and writes the scoring at train end. The training step hands
    it each micro-batch through `record` (DynamicsTrainer.compute_loss, or DynamicsHook.compute_loss).

    scoring_dir: the scoring folder (like `hprune score --out`); run: this fine-tune's run number K (use a
    different `args.seed` per run); data: the LabelledData (hprune.load_data) the dataset was made from, so that
    the manifest names its file, columns and fingerprint, which `export` and `compare` need (without it, labels
    come from the batches and label names from the model config); example_ids: the ids the training set holds.
    """

    def __init__(self, scoring_dir: str | Path, *, run: int = 0, data: LabelledData | None = None, example_ids=None,
                 executor: str = "DynamicsTrainer"):
        self.scoring_dir = Path(scoring_dir)
        self.run = run
        self.data = data
        self.executor = executor
        self.example_ids = None if example_ids is None else np.sort(np.asarray(example_ids, dtype=np.int64))
        self.recorder = None
        self.scoring_ = None

    def record(self, ids, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """A training micro-batch: its example ids, the logits the step computed, the gold labels."""
        if self.recorder is None:
            raise HpruneError("the recording was not started: pass it to the Trainer as a callback")
        if logits.ndim != 2:
            raise HpruneError(f"hprune records classification logits (batch x classes); got shape {tuple(logits.shape)}")
        cols = self._columns(ids)
        self.recorder.record(self._epoch, cols, logits, labels)
        self._labels[cols] = labels.detach().cpu().numpy()

    def _columns(self, ids) -> np.ndarray:
        """Positions in the run's arrays of these example ids."""
        ids = np.asarray(ids.cpu() if torch.is_tensor(ids) else ids, dtype=np.int64)
        if np.array_equal(self.example_ids, np.arange(len(self.example_ids))):
            return ids
        cols = np.minimum(np.searchsorted(self.example_ids, ids), len(self.example_ids) - 1)
        if not np.array_equal(self.example_ids[cols], ids):
            raise HpruneError(f"example ids {ids[self.example_ids[cols] != ids][:5]} are not in the training dataset")
        return cols

    # ---- the loop's events ----

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.world = current_world()
        if self.world.is_main:
            self.scoring_dir.mkdir(parents=True, exist_ok=True)
        self.n_epochs = int(state.num_train_epochs)
        self.model_config = getattr(model, "config", None)
        dyn = RunDynamics.empty(self.n_epochs, len(self.example_ids))
        self.info = {"run": self.run, "seed": args.seed, "train_seconds": 0.0, "eval_accuracy": [], "train_loss": [],
                     "config": self._run_config(args), "fingerprint": self.data.fingerprint if self.data is not None else None}
        if state.global_step > 0 and run_paths(self.scoring_dir, self.run)["npz"].exists():  # resume_from_checkpoint: keep the epochs before it
            saved, _ = load_run(self.scoring_dir, self.run)
            if saved.correct.shape == dyn.correct.shape:
                dyn, self.info = load_run(self.scoring_dir, self.run, epochs=min(saved.epochs_done, int(state.epoch)))
        self.recorder = DynamicsRecorder(dyn, duplicates="first" if self.world.distributed else "raise")
        self.recorder.seen[: dyn.epochs_done] = True
        self._labels = np.full(len(self.example_ids), -1, dtype=np.int64)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._epoch = int(state.epoch)  # the trainer's epoch (fractional when resumed mid-epoch)
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        epoch, dyn = self._epoch, self.recorder.dynamics
        gather_epoch(self.world, self.recorder, epoch)
        if self.world.distributed:
            parts = all_gather(self.world, (np.flatnonzero(self._labels >= 0), self._labels[self._labels >= 0]))
            for cols, values in parts:
                self._labels[cols] = values
        missing = self.recorder.missing(epoch)
        if len(missing):
            from transformers.utils import logging

            logging.get_logger(__name__).warning(
                f"hprune: epoch {epoch} of run {self.run} left {len(missing)} examples unrecorded (stopped early by max_steps, "
                "or resumed mid-epoch?); the run counts only complete epochs: train whole epochs")
            return
        dyn.epochs_done = epoch + 1
        self.info["train_seconds"] = round(self.info["train_seconds"] + time.perf_counter() - self._epoch_started, 2)
        self.info.update(run_conditions())  # what that time depends on, as of this epoch
        probs = dyn.probs[epoch].astype(np.float64)
        self.info["train_loss"].append(round(float(-np.log(np.maximum(probs, 1e-7)).mean()), 4))  # from the recorded probabilities
        if self.data is None:
            self.info.update(labels=self._labels.tolist(), label_names=self._label_names())
        if self.world.is_main:
            save_run(self.scoring_dir, self.run, dyn, self.info)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.recorder is None or not metrics or "eval_accuracy" not in metrics:
            return
        self.info["eval_accuracy"].append(round(float(metrics["eval_accuracy"]), 4))
        if self.world.is_main and run_paths(self.scoring_dir, self.run)["json"].exists():
            write_json(run_paths(self.scoring_dir, self.run)["json"], self.info)

    def on_train_end(self, args, state, control, **kwargs):
        if self.world.is_main and self.recorder.dynamics.epochs_done == self.n_epochs:
            self.scoring_ = self.write_scoring(device=str(args.device))

    # ---- the run's files and the scoring ----

    def _run_config(self, args) -> dict:
        name = getattr(self.model_config, "_name_or_path", None) or "model"
        settings = {k: getattr(args, a, None) for k, a in _RUN_CONFIG.items()}
        return {"model": name, **{k: getattr(v, "value", v) if isinstance(v, enum.Enum) else v for k, v in settings.items()},
                "processes": args.world_size}

    def _label_names(self) -> list[str]:
        if self.data is not None:
            return self.data.label_names
        id2label = getattr(self.model_config, "id2label", None) or {}
        n = max(int(self._labels.max()) + 1, len(id2label))
        return [str(id2label.get(k, k)) for k in range(n)]

    def write_scoring(self, device: str | None = None):
        """Score every finished run in `scoring_dir` (at least two, with the same settings); returns the
        Scoring, or None while fewer than two runs are there. Called after each `train()`."""
        out, runs, info = self.scoring_dir, [], []
        while (done := finished_run(out, len(runs), self.n_epochs, tidy=False)) is not None:
            runs.append(done[0])
            info.append(done[1])
        if len(runs) < 2:
            return None
        for dyn, i in zip(runs[1:], info[1:]):
            if i["config"] != info[0]["config"] or i.get("fingerprint") != info[0].get("fingerprint") or dyn.correct.shape != runs[0].correct.shape:
                raise HpruneError(f"{out}: runs 0 and {i['run']} were trained with different settings or data; "
                                  "use one scoring_dir per setting")
        seeds = [i["seed"] for i in info]
        config = {**info[0]["config"], "runs": len(runs), "seed": seeds[0], "seeds": seeds}
        labels = self.data.labels[self.example_ids] if self.data is not None else np.asarray(info[0]["labels"], dtype=np.int64)
        names = self._label_names() if self.data is not None else info[0]["label_names"]
        source = data_info(self.data) if self.data is not None else {"train_source": None, "n_examples": len(labels), "text_column": None,
                                                                      "pair_column": None, "label_column": None, "label_names": names}
        manifest = {"fingerprint": info[0].get("fingerprint"), "eval_fingerprint": None, **source, "eval_source": None,
                    "device": device, "executor": self.executor}
        return write_scoring(out, runs, info, labels=labels, label_names=names, config=config, example_ids=self.example_ids, manifest=manifest,
                             advice=TRAINER_ADVICE)


class DynamicsTrainer(Trainer):
    """A `transformers.Trainer` that records training dynamics by example id (see the module doc), with the
    model's own loss. scoring_dir, run, data: as DynamicsRecording's; example_id_column: the column holding
    each example's row in `data` (default example_id). `recording` is the run's DynamicsRecording."""

    def __init__(self, *args, scoring_dir: str | Path, run: int = 0, data: LabelledData | None = None,
                 example_id_column: str = ID_COLUMN, **kwargs):
        super().__init__(*args, **kwargs)
        self.example_id_column = example_id_column
        ids = None
        if self.train_dataset is not None:
            self.train_dataset, ids = dataset_with_ids(self.train_dataset, data, example_id_column)
        self.data_collator = KeepIds(self.data_collator, example_id_column)
        self.recording = DynamicsRecording(scoring_dir, run=run, data=data, example_ids=ids)
        self.add_callback(self.recording)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.example_id_column not in self._signature_columns:
            self._signature_columns.append(self.example_id_column)  # so remove_unused_columns keeps it

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        ids = inputs.pop(self.example_id_column, None)
        labels = inputs.get("labels")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training:
            if ids is None or labels is None:
                raise HpruneError(f"a training batch has no {'example ids' if ids is None else 'labels'}; "
                                  f"DynamicsTrainer needs column {self.example_id_column!r} and labels in every batch")
            self.recording.record(ids, outputs["logits"] if isinstance(outputs, Mapping) else outputs[1], labels)
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, *args, **kwargs):
        inputs = {k: v for k, v in inputs.items() if k != self.example_id_column}
        return super().prediction_step(model, inputs, *args, **kwargs)


class DynamicsHook(DynamicsRecording):
    """The recording for an unmodified Trainer (see the module doc): pass `with_ids(train_dataset)` as the
    training set, `compute_loss` as `compute_loss_func` and the hook itself as a callback. The loss is the
    cross-entropy of the logits (summed over the batch and divided by the Trainer's `num_items_in_batch`
    when it gives one, so gradient accumulation weighs every example alike), classification only."""

    def __init__(self, scoring_dir: str | Path, *, run: int = 0, data: LabelledData | None = None):
        super().__init__(scoring_dir, run=run, data=data, executor="DynamicsHook")

    def with_ids(self, dataset, column: str = ID_COLUMN):
        """The training dataset with each example's id (column `column`, else its position) packed into its
        label: id x classes + label. Items are dicts with a `labels` or `label` field."""
        dataset, self.example_ids = dataset_with_ids(dataset, self.data, column)
        first = dataset[0]
        self.label_field = "labels" if "labels" in first else "label"
        self.n_classes = len(self.data.label_names) if self.data is not None else int(max(int(dataset[i][self.label_field]) for i in range(len(dataset)))) + 1
        return PackedLabels(dataset, column, self.label_field, self.n_classes)

    def compute_loss(self, outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        if torch.is_grad_enabled():  # a training step: the labels carry the ids (evaluation runs without gradients)
            ids, labels = torch.div(labels, self.n_classes, rounding_mode="floor"), labels % self.n_classes
            self.record(ids, logits, labels)
        loss = torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum" if num_items_in_batch else "mean")
        return loss / num_items_in_batch if num_items_in_batch else loss


class PackedLabels(torch.utils.data.Dataset):
    """A map-style dataset whose items carry id x classes + label in their label field, and no id column."""

    def __init__(self, dataset, id_column: str, label_field: str, n_classes: int):
        self.dataset, self.id_column, self.label_field, self.n_classes = dataset, id_column, label_field, n_classes

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i):
        item = dict(self.dataset[i])
        example_id = int(item.pop(self.id_column))
        item[self.label_field] = example_id * self.n_classes + int(item[self.label_field])
        return item
