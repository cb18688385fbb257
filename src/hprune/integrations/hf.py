"""H-scores from your own `transformers.Trainer` script: `DynamicsTrainer` is a Trainer that records,
from the logits every training step already computes (no extra forward pass), each example's
correctness, gold-label probability, margin and EL2N, keyed by its example id, and writes what
`hprune score` writes: OUT/dynamics/run-K.npz + run-K.json after every epoch, and once two or more
runs are in OUT, scores.parquet, subsets.json and manifest.json, so `hprune subsets`, `export`,
`train --subset` and `compare` work on OUT.

    from hprune.integrations.hf import DynamicsTrainer
    trainer = DynamicsTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                              scoring_dir="runs/x", run=0, data=load_data("train.jsonl"))

The example id is column `example_id` of the training dataset (added as the row number when
missing). It survives `remove_unused_columns` and any data collator: the trainer takes it out of
each feature before the collator and puts it back into the batch, and `compute_loss` takes it out
before the model sees the batch. Any sampler, gradient accumulation and DDP (accelerate's padding
of the last batches: the first presentation of an example counts) are fine because records are
keyed by id; the epoch is the trainer state's.
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


class DynamicsTrainer(Trainer):
    """A `transformers.Trainer` that records training dynamics by example id (see the module doc).

    scoring_dir: the scoring folder (like `hprune score --out`); run: this fine-tune's run number K
    (use a different `args.seed` per run); data: the LabelledData (hprune.load_data) the dataset
    was made from, so that the manifest names its file, columns and fingerprint, which `export` and
    `compare` need (without it, labels come from the batches and label names from the model config);
    example_id_column: the column holding each example's row in `data` (default example_id).
    """

    def __init__(self, *args, scoring_dir: str | Path, run: int = 0, data: LabelledData | None = None,
                 example_id_column: str = ID_COLUMN, **kwargs):
        super().__init__(*args, **kwargs)
        self.scoring_dir = Path(scoring_dir)
        self.run = run
        self.data = data
        self.example_id_column = example_id_column
        if self.train_dataset is not None:
            self.train_dataset = self._with_ids(self.train_dataset)
        self.data_collator = KeepIds(self.data_collator, example_id_column)
        self.recorder = None
        self.add_callback(_Recording(self))

    # ---- the example id column ----

    def _with_ids(self, dataset):
        col = self.example_id_column
        if isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__len__"):
            raise HpruneError("DynamicsTrainer needs a training dataset with a length (map-style), to know every example's id")
        if hasattr(dataset, "column_names") and hasattr(dataset, "add_column"):  # datasets.Dataset
            if col not in dataset.column_names:
                dataset = dataset.add_column(col, list(range(len(dataset))))
            ids = np.asarray(dataset[col], dtype=np.int64)
        elif len(dataset) and isinstance(dataset[0], Mapping) and col in dataset[0]:
            ids = np.array([int(dataset[i][col]) for i in range(len(dataset))], dtype=np.int64)
        else:
            dataset = WithIds(dataset, col)
            ids = np.arange(len(dataset), dtype=np.int64)
        self.example_ids = np.sort(ids)
        if len(np.unique(ids)) != len(ids) or (len(ids) and ids.min() < 0):
            raise HpruneError(f"column {col!r} must hold distinct non-negative example ids (rows of your data)")
        if self.data is not None and len(ids) and ids.max() >= len(self.data):
            raise HpruneError(f"example id {ids.max()} is not a row of {self.data.source} ({len(self.data)} rows)")
        self._dense = np.array_equal(self.example_ids, np.arange(len(ids)))
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.example_id_column not in self._signature_columns:
            self._signature_columns.append(self.example_id_column)  # so remove_unused_columns keeps it

    def _columns(self, ids) -> np.ndarray:
        """Positions in the run's arrays of these example ids."""
        ids = np.asarray(ids.cpu() if torch.is_tensor(ids) else ids, dtype=np.int64)
        if self._dense:
            return ids
        cols = np.minimum(np.searchsorted(self.example_ids, ids), len(self.example_ids) - 1)
        if not np.array_equal(self.example_ids[cols], ids):
            raise HpruneError(f"example ids {ids[self.example_ids[cols] != ids][:5]} are not in the training dataset")
        return cols

    # ---- recording ----

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        ids = inputs.pop(self.example_id_column, None)
        labels = inputs.get("labels")
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        if model.training and self.recorder is not None:
            if ids is None or labels is None:
                raise HpruneError(f"a training batch has no {'example ids' if ids is None else 'labels'}; "
                                  f"DynamicsTrainer needs column {self.example_id_column!r} and labels in every batch")
            logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[1]
            if logits.ndim != 2:
                raise HpruneError(f"DynamicsTrainer records classification logits (batch x classes); got shape {tuple(logits.shape)}")
            cols = self._columns(ids)
            self.recorder.record(self._epoch, cols, logits, labels)
            self._labels[cols] = labels.detach().cpu().numpy()
        return (loss, outputs) if return_outputs else loss

    def prediction_step(self, model, inputs, *args, **kwargs):
        inputs = {k: v for k, v in inputs.items() if k != self.example_id_column}
        return super().prediction_step(model, inputs, *args, **kwargs)

    # ---- the run's files and the scoring ----

    def _run_config(self) -> dict:
        model = self.accelerator.unwrap_model(self.model)
        name = getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__
        settings = {k: getattr(self.args, a, None) for k, a in _RUN_CONFIG.items()}
        return {"model": name, **{k: getattr(v, "value", v) if isinstance(v, enum.Enum) else v for k, v in settings.items()},
                "processes": self.args.world_size}

    def _label_names(self) -> list[str]:
        if self.data is not None:
            return self.data.label_names
        id2label = getattr(getattr(self.accelerator.unwrap_model(self.model), "config", None), "id2label", None) or {}
        n = max(int(self._labels.max()) + 1, len(id2label))
        return [str(id2label.get(k, k)) for k in range(n)]

    def write_scoring(self):
        """Score every finished run in `scoring_dir` (at least two, with the same settings); returns the
        Scoring, or None while fewer than two runs are there. Called after each `train()`."""
        out, runs, info = self.scoring_dir, [], []
        while (done := finished_run(out, len(runs), self.recorder_epochs, tidy=False)) is not None:
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
                    "device": str(self.args.device), "executor": "DynamicsTrainer"}
        return write_scoring(out, runs, info, labels=labels, label_names=names, config=config, example_ids=self.example_ids, manifest=manifest,
                             advice=TRAINER_ADVICE)


class _Recording(TrainerCallback):
    """The trainer's hooks into the training loop: allocate, take the epoch, gather, save."""

    def __init__(self, trainer: DynamicsTrainer):
        self.t = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        t = self.t
        t.world = current_world()
        n_epochs = int(state.num_train_epochs)
        t.recorder_epochs = n_epochs
        dyn = RunDynamics.empty(n_epochs, len(t.example_ids))
        t._info = {"run": t.run, "seed": args.seed, "train_seconds": 0.0, "eval_accuracy": [], "train_loss": [], "config": t._run_config(),
                   "fingerprint": t.data.fingerprint if t.data is not None else None}
        if state.global_step > 0 and run_paths(t.scoring_dir, t.run)["npz"].exists():  # resume_from_checkpoint: keep the epochs before it
            saved, _ = load_run(t.scoring_dir, t.run)
            if saved.correct.shape == dyn.correct.shape:
                dyn, t._info = load_run(t.scoring_dir, t.run, epochs=min(saved.epochs_done, int(state.epoch)))
        t.recorder = DynamicsRecorder(dyn, duplicates="first" if t.world.distributed else "raise")
        t.recorder.seen[: dyn.epochs_done] = True
        t._labels = np.full(len(t.example_ids), -1, dtype=np.int64)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.t._epoch = int(state.epoch)  # the trainer's epoch (fractional when resumed mid-epoch)
        self.t._epoch_started = time.perf_counter()

    def on_epoch_end(self, args, state, control, **kwargs):
        t, epoch = self.t, self.t._epoch
        dyn = t.recorder.dynamics
        gather_epoch(t.world, t.recorder, epoch)
        if t.world.distributed:
            parts = all_gather(t.world, (np.flatnonzero(t._labels >= 0), t._labels[t._labels >= 0]))
            for cols, values in parts:
                t._labels[cols] = values
        missing = t.recorder.missing(epoch)
        if len(missing):
            from transformers.utils import logging

            logging.get_logger(__name__).warning(
                f"hprune: epoch {epoch} of run {t.run} left {len(missing)} examples unrecorded (stopped early by max_steps, "
                "or resumed mid-epoch?); the run counts only complete epochs: train whole epochs")
            return
        dyn.epochs_done = epoch + 1
        t._info["train_seconds"] = round(t._info["train_seconds"] + time.perf_counter() - t._epoch_started, 2)
        probs = dyn.probs[epoch].astype(np.float64)
        t._info["train_loss"].append(round(float(-np.log(np.maximum(probs, 1e-7)).mean()), 4))  # from the recorded probabilities
        if t.data is None:
            t._info.update(labels=t._labels.tolist(), label_names=t._label_names())
        if t.world.is_main:
            save_run(t.scoring_dir, t.run, dyn, t._info)

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        t = self.t
        if t.recorder is None or not metrics or "eval_accuracy" not in metrics:
            return
        t._info["eval_accuracy"].append(round(float(metrics["eval_accuracy"]), 4))
        if t.world.is_main and run_paths(t.scoring_dir, t.run)["json"].exists():
            write_json(run_paths(t.scoring_dir, t.run)["json"], t._info)

    def on_train_end(self, args, state, control, **kwargs):
        t = self.t
        if t.world.is_main and t.recorder.dynamics.epochs_done == t.recorder_epochs:
            t.scoring_ = t.write_scoring()
