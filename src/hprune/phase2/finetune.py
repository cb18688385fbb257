"""Phase 2: fine-tune once on the full set or a subset, then evaluate; `finetune` also writes OUT/metrics.json."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import ScoreConfig, TrainConfig
from ..data import LabelledData
from ..engine.loop import default_device, evaluate, fine_tune, run_conditions, seed_everything, torch_settings
from ..engine.models import check_model, load_model, recorded_name, train_config_for
from ..errors import HpruneError
from ..io import ensure_writable, write_json
from ..metrics import TEST_PREFIX
from ..subsets import rs2_epochs
from ..tasks import as_task_data, task_of

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
    epoch_size: int | None = None,
) -> dict:
    """Fine-tune on `example_ids` of `train` (all rows when None); the task's metrics on `eval_data`
    (classification: accuracy, macro F1, MCC; multiple choice: accuracy; QA: exact, f1), timings and the
    conditions they were measured in (engine.loop.run_conditions);
    with `test_data`, the same metrics on it too, prefixed `test_`, from the same fine-tuned model.
    With `epoch_size`, each epoch trains on a new random `epoch_size` of those examples (RS2: subsets.rs2_epochs),
    and `train_size` is that size: the example-steps of a static subset of it."""
    with torch_settings(threads):
        seed_everything(seed)
        task = task_of(train)
        tokenizer, model = load_model(model_name, train.label_names, task.name)
        model.to(default_device())
        ids = train.example_ids if example_ids is None else np.asarray(example_ids, dtype=np.int64)
        encoded = task.encode(tokenizer, train, config.max_length, ids=ids)
        epoch_rows = None
        if epoch_size is not None:  # the drawn examples' features (a long QA context has several)
            epoch_rows = [np.flatnonzero(np.isin(encoded.example_index, drawn)) for drawn in rs2_epochs(len(ids), epoch_size, config.epochs, seed=seed)]
        fit = fine_tune(model, tokenizer, encoded.features, encoded.targets, config, seed=seed, progress=progress, task=task, epoch_rows=epoch_rows)
        conditions = run_conditions()

        def metrics_on(data: LabelledData) -> dict[str, float]:
            return evaluate(task, model, tokenizer, data, task.encode(tokenizer, data, config.max_length), bf16=config.bf16)

        started = time.perf_counter()
        metrics = metrics_on(eval_data)
        if test_data is not None:
            metrics.update({f"{TEST_PREFIX}{k}": v for k, v in metrics_on(test_data).items()})
        return {
            **metrics,
            "train_size": int(len(ids) if epoch_size is None else epoch_size),
            "train_seconds": round(fit["train_seconds"], 2),
            "eval_seconds": round(time.perf_counter() - started, 2),
            "train_loss": [round(x, 4) for x in fit["train_loss"]],
            **conditions,
        }


def finetune(train, eval_data, *, model: str = ScoreConfig.model, rows=None, subset: str | None = None, seed: int = 0,
             out_dir: str | Path | None = None, paper_settings: bool = False, task_type: str | None = None,
             text_column: str | None = None, text_pair_column: str | None = None, label_column: str | None = None,
             threads: int | None = None, progress: bool | str = True, **options) -> dict:
    """Phase 2: fine-tune `model` on the training data, or on its `rows` (a boolean mask over the rows, e.g.
    `HScorer.get_support(...)` or `Scoring.mask(...)`, or row numbers), and evaluate on `eval_data`; with
    `out_dir`, write OUT/metrics.json (`subset` names the rows there). Data as HScorer.fit takes it; `options`
    are TrainConfig's fields (None: hprune's defaults for the model and the full training set's size).
    Returns the metrics (the task's, e.g. accuracy, macro_f1 and mcc), train_size and timings."""
    columns = {"text_column": text_column, "pair_column": text_pair_column, "label_column": label_column}
    train = as_task_data(train, task_type=task_type, **columns)
    eval_data = as_task_data(eval_data, like=train, **columns)
    config = train_config_for(model, n_examples=len(train), task_type=task_of(train).name, paper_settings=paper_settings, **options)
    ids = None if rows is None else _row_ids(rows, len(train))
    subset = subset or ("full" if rows is None else "rows")
    check_model(model, max_length=config.max_length)
    if out_dir is not None:
        ensure_writable(Path(out_dir))  # only now, so that a bad input leaves nothing behind
    metrics = train_and_evaluate(model, train, eval_data, config, seed=seed, example_ids=ids, threads=threads,
                                 progress=progress if isinstance(progress, str) else f"train {subset}" if progress else None)
    if out_dir is not None:
        write_json(Path(out_dir) / METRICS_FILE, {
            "subset": subset, "model": recorded_name(model), "seed": seed, "train_source": train.source, "eval_source": eval_data.source,
            "fingerprint": train.fingerprint, "config": config.to_dict(), "metrics": metrics})
    return metrics


def _row_ids(rows, n_examples: int) -> np.ndarray:
    """Row numbers from a boolean mask over the rows, or from row numbers."""
    rows = np.asarray(rows)
    if rows.dtype == bool:
        if len(rows) != n_examples:
            raise HpruneError(f"rows is a mask of {len(rows)} values for {n_examples} rows; give the training data that was scored")
        return np.flatnonzero(rows)
    return rows.astype(np.int64)
