"""Phase 2: fine-tune once on the full set or a subset, then evaluate."""
from __future__ import annotations

import time

import numpy as np

from .data import LabelledData
from .models import load_model
from .tasks import task_of
from .metrics import TEST_PREFIX
from .config import TrainConfig
from .training import default_device, fine_tune, seed_everything, setup_torch


def train_and_evaluate(
    model_name: str,
    train: LabelledData,
    eval_data: LabelledData,
    config: TrainConfig,
    *,
    seed: int,
    example_ids: np.ndarray | None = None,
    progress: str | None = None,
    threads: int | None = None,
    test_data: LabelledData | None = None,
) -> dict:
    """Fine-tune on `example_ids` of `train` (all rows when None); the task's metrics on `eval_data`
    (classification: accuracy, macro F1, MCC; multiple choice: accuracy; QA: exact, f1) and timings;
    with `test_data`, the same metrics on it too, prefixed `test_`, from the same fine-tuned model."""
    setup_torch(threads)
    seed_everything(seed)
    task = task_of(train)
    tokenizer, model = load_model(model_name, train.label_names, task.name)
    model.to(default_device())
    ids = train.example_ids if example_ids is None else np.asarray(example_ids, dtype=np.int64)
    encoded = task.encode(tokenizer, train, config.max_length, ids=ids)
    fit = fine_tune(model, tokenizer, encoded.features, encoded.targets, config, seed=seed, progress=progress, task=task)

    def evaluate(data: LabelledData) -> dict[str, float]:
        return task.evaluate(model, tokenizer, data, task.encode(tokenizer, data, config.max_length), bf16=config.bf16)

    started = time.perf_counter()
    metrics = evaluate(eval_data)
    if test_data is not None:
        metrics.update({f"{TEST_PREFIX}{k}": v for k, v in evaluate(test_data).items()})
    return {
        **metrics,
        "train_size": int(len(ids)),
        "train_seconds": round(fit["train_seconds"], 2),
        "eval_seconds": round(time.perf_counter() - started, 2),
        "train_loss": [round(x, 4) for x in fit["train_loss"]],
    }
