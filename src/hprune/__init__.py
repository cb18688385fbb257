"""hprune: automatic pruning of fine-tuning datasets by H-score (Tayaranian et al., arXiv 2407.08887).

    scorer = hprune.HScorer(model="minilm", runs=6, epochs=3, out_dir="runs/trec").fit("train.jsonl")
    keep = scorer.get_support("winning-ticket")         # or hprune.load("runs/trec").mask(...), .select(data)
    metrics = hprune.finetune("train.jsonl", "test.jsonl", rows=keep)

The names below are imported on first use (PEP 562), so `import hprune` loads neither torch nor transformers.
"""
from __future__ import annotations

import importlib

# public name -> the module that defines it
_EXPORTS = {
    "HpruneError": "errors", "Interrupted": "errors",
    "ScoreConfig": "config", "TrainConfig": "config", "TASK_TYPES": "config", "train_config": "config",
    "aum_scores": "scores", "confidence": "scores", "el2n_scores": "scores", "forgetting_events": "scores",
    "h_scores": "scores", "score_table": "scores", "variability": "scores",
    "WINNING_TICKET": "subsets", "describe_subsets": "subsets", "select": "subsets", "subset_family": "subsets", "subset_mask": "subsets",
    "LabelledData": "data", "load_data": "data",
    "load_task_data": "tasks",
    "HScorer": "phase1.scorer", "finetune": "phase2.finetune", "Scoring": "artifacts", "load": "artifacts", "load_scoring": "artifacts",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'hprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
