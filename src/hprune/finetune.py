"""Phase 2: fine-tune once on the full set or a subset, then evaluate."""
from __future__ import annotations

import time

import numpy as np

from .data import LabelledData
from .metrics import classification_metrics
from .models import load_classifier
from .training import TrainConfig, default_device, encode, fine_tune, predict, seed_everything, setup_torch


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
) -> dict:
    """Fine-tune on `example_ids` of `train` (all rows when None); metrics on `eval_data` and timings."""
    setup_torch(threads)
    seed_everything(seed)
    tokenizer, model = load_classifier(model_name, train.label_names)
    model.to(default_device())
    ids = train.example_ids if example_ids is None else np.asarray(example_ids, dtype=np.int64)
    features = encode(tokenizer, [train.texts[i] for i in ids], [train.pairs[i] for i in ids] if train.pairs else None, config.max_length)
    fit = fine_tune(model, tokenizer, features, train.labels[ids], config, seed=seed, progress=progress)
    started = time.perf_counter()
    logits = predict(model, tokenizer, encode(tokenizer, eval_data.texts, eval_data.pairs, config.max_length), bf16=config.bf16)
    return {
        **classification_metrics(eval_data.labels, logits),
        "train_size": int(len(ids)),
        "train_seconds": round(fit["train_seconds"], 2),
        "eval_seconds": round(time.perf_counter() - started, 2),
        "train_loss": [round(x, 4) for x in fit["train_loss"]],
    }
