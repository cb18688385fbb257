"""Phase 2: fine-tune once on the full set or a subset, then evaluate; `finetune` also writes OUT/metrics.json."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import TrainConfig
from ..data import LabelledData
from ..engine.loop import default_device, evaluate, fine_tune, seed_everything, setup_torch
from ..engine.models import load_model, recorded_name
from ..io import write_json
from ..metrics import TEST_PREFIX
from ..tasks import task_of

METRICS_FILE = "metrics.json"


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

    def metrics_on(data: LabelledData) -> dict[str, float]:
        return evaluate(task, model, tokenizer, data, task.encode(tokenizer, data, config.max_length), bf16=config.bf16)

    started = time.perf_counter()
    metrics = metrics_on(eval_data)
    if test_data is not None:
        metrics.update({f"{TEST_PREFIX}{k}": v for k, v in metrics_on(test_data).items()})
    return {
        **metrics,
        "train_size": int(len(ids)),
        "train_seconds": round(fit["train_seconds"], 2),
        "eval_seconds": round(time.perf_counter() - started, 2),
        "train_loss": [round(x, 4) for x in fit["train_loss"]],
    }


def finetune(train: LabelledData, eval_data: LabelledData, *, model: str, config: TrainConfig, seed: int = 0,
             ids: np.ndarray | None = None, subset: str = "full", out_dir: str | Path | None = None,
             progress: str | None = None, threads: int | None = None) -> dict:
    """Fine-tune `model` on the rows `ids` of `train` (all when None; `subset` names them) and evaluate on
    `eval_data`. Returns what OUT/metrics.json holds (written when `out_dir` is given): the metrics under
    "metrics", with the subset, model, seed, data sources, fingerprint and hyper-parameters."""
    metrics = train_and_evaluate(model, train, eval_data, config, seed=seed, example_ids=ids, progress=progress, threads=threads)
    result = {"subset": subset, "model": recorded_name(model), "seed": seed, "train_source": train.source, "eval_source": eval_data.source,
              "fingerprint": train.fingerprint, "config": config.to_dict(), "metrics": metrics}
    if out_dir is not None:
        write_json(Path(out_dir) / METRICS_FILE, result)
    return result
