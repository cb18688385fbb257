"""hprune: automatic pruning of fine-tuning datasets by H-score (Tayaranian et al., arXiv 2407.08887)."""
from .data import LabelledData, load_data
from .errors import HpruneError
from .scores import aum_scores, confidence, el2n_scores, forgetting_events, h_scores, score_table, variability
from .scoring import HScorer, ScoreConfig, load_scoring
from .subsets import WINNING_TICKET, describe_subsets, select, subset_family, subset_mask
from .tasks import TASK_TYPES, load_task_data
from .training import TrainConfig

__all__ = [
    "HScorer", "HpruneError", "LabelledData", "ScoreConfig", "TASK_TYPES", "TrainConfig", "WINNING_TICKET",
    "aum_scores", "confidence", "describe_subsets", "el2n_scores", "forgetting_events", "h_scores",
    "load_data", "load_scoring", "load_task_data", "score_table", "select", "subset_family", "subset_mask", "variability",
]
