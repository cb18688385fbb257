"""SQuAD v2 exact match and F1, as the official evaluation script defines them (our own code; the
`evaluate` package cannot load offline).

Answers are compared after normalisation: lower case, punctuation removed, the articles a/an/the
removed, whitespace collapsed. A question's score is the best over its gold answers; gold answers that
normalise to nothing are dropped, and a question left with none is unanswerable: only the empty
prediction "" scores 1 on it (exact and F1), and "" scores 0 on an answerable question.
"""
from __future__ import annotations

import re
import string
from collections import Counter

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _tokens(text: str) -> list[str]:
    return normalize_answer(text).split() if text else []


def exact_score(gold: str, prediction: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(prediction))


def f1_score(gold: str, prediction: str) -> float:
    gold_tokens, pred_tokens = _tokens(gold), _tokens(prediction)
    if not gold_tokens or not pred_tokens:
        return float(gold_tokens == pred_tokens)
    same = sum((Counter(gold_tokens) & Counter(pred_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_texts(answers: list[str]) -> list[str]:
    """The gold answers that count: those that do not normalise to nothing; [""] when unanswerable."""
    return [a for a in answers if normalize_answer(a)] or [""]


def squad_v2_scores(golds: list[list[str]], predictions: list[str]) -> dict[str, float]:
    """Exact match and F1 (fractions, 0..1) averaged over questions, each the max over its gold answers;
    `golds[i]` is question i's gold answer texts ([] when unanswerable), `predictions[i]` its answer
    ("" for no answer)."""
    if len(golds) != len(predictions):
        raise ValueError(f"{len(golds)} questions but {len(predictions)} predictions")
    if not golds:
        return {"exact": 0.0, "f1": 0.0}
    exact = f1 = 0.0
    for answers, prediction in zip(golds, predictions):
        texts = gold_texts(answers)
        exact += max(exact_score(a, prediction) for a in texts)
        f1 += max(f1_score(a, prediction) for a in texts)
    return {"exact": exact / len(golds), "f1": f1 / len(golds)}
