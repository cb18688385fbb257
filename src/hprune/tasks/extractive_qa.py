"""Extractive QA in the SQuAD v2 layout: rows `{"context", "question", "answers": {"text": [...],
"answer_start": [...]}}`; empty answers = unanswerable.

Encoding: (question, context) pairs; a context longer than the window is split into overlapping
features (`max_length` tokens, `doc_stride(max_length)` tokens of overlap), each knowing its question.
A feature's targets are the token positions of the first gold answer's start and end when the answer
lies wholly inside the feature's window, else position 0 (the [CLS] token: "no answer here").

Per step and feature: correct = argmax start is the gold start AND argmax end is the gold end (the
paper's rule); gold probability = p(start) x p(end); margin = the smaller of the start and end logit
margins; EL2N = the mean of the start and end error norms. Padding positions get -inf logits.
Per question and epoch (dynamics.record.aggregate_features): the relevant features are those whose window
holds the answer, or all the question's features when none does (unanswerable, or an answer cut by
every window); the question is correct iff every relevant feature is; probability and margin are the
minimum over them, EL2N the maximum.

Evaluation (SQuAD v2): a question's prediction is its best span over all its features (start <= end,
at most MAX_ANSWER_TOKENS tokens, both inside the context; score = start logit + end logit), or ""
when the null score (start + end logit at position 0; the minimum over the question's features) is
higher, as Hugging Face's run_qa post-processing does; then exact match and F1 (tasks/squad.py).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import MODEL_KEYS, read_table
from ..errors import HpruneError
from .base import Encoded, Task, TaskData, as_list, content_fingerprint, is_text, require_columns, rows_message, step_statistics
from .squad import squad_v2_scores

CONTEXT, QUESTION, ANSWERS = "context", "question", "answers"
MAX_ANSWER_TOKENS = 30
NULL_INDEX = 0  # the [CLS] position: the target of a feature that holds no answer


def doc_stride(max_length: int) -> int:
    """Tokens shared by consecutive windows of a long context: a quarter of the window, at most 128."""
    return min(128, max_length // 4)


def qa_statistics(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per feature, from (batch, 2, tokens) start/end logits and (batch, 2) gold positions."""
    n = logits.shape[0]
    both = {k: v.view(n, 2) for k, v in step_statistics(logits.flatten(0, 1), targets.flatten()).items()}
    return {"correct": both["correct"].all(1), "probs": both["probs"].prod(1), "margins": both["margins"].min(1).values,
            "el2n": both["el2n"].mean(1)}


class ExtractiveQA(Task):
    name = "extractive-qa"
    metrics = ("exact", "f1")
    default_metric = "f1"
    eval_metric = "exact"
    ragged = True

    def load(self, source: str, *, table=None, **_) -> TaskData:
        frame, records = table if table is not None else read_table(source)
        if frame.empty:
            raise HpruneError(f"{source} has no rows; give a file with at least one question")
        require_columns(frame, source, [CONTEXT, QUESTION, ANSWERS], self.name)
        examples = []
        for i, (context, question, answers) in enumerate(zip(frame[CONTEXT].tolist(), frame[QUESTION].tolist(), frame[ANSWERS].tolist())):
            for column, value in ((CONTEXT, context), (QUESTION, question)):
                if not is_text(value):
                    raise rows_message(source, f"empty, missing or non-text {column!r}", [i], "fill or remove that row")
            texts, starts = _answers(answers)
            if texts is None:
                raise rows_message(source, f"{ANSWERS!r} is not {{\"text\": [...], \"answer_start\": [...]}} with lists of equal length", [i],
                                   "give SQuAD v2's layout (empty lists for an unanswerable question)")
            for text, start in zip(texts, starts):
                if not is_text(text) or context[start:start + len(text)] != text:
                    raise rows_message(source, f"answer {text!r} is not at answer_start {start} of the context", [i],
                                       "fix answer_start (a character offset into the context)")
            examples.append({"context": context, "question": question, "answers": texts, "starts": starts})
        unanswerable = np.array([not e["answers"] for e in examples], dtype=np.int64)
        return TaskData(
            task_type=self.name, source=str(source), frame=frame, records=records, examples=examples,
            labels=unanswerable, label_names=["answerable", "unanswerable"],
            fingerprint=content_fingerprint(self.name, ([e["context"], e["question"], e["answers"], e["starts"]] for e in examples)),
            text_column=QUESTION, pair_column=CONTEXT, label_column=ANSWERS,
        )

    def baseline(self, data: TaskData) -> tuple[float, str]:
        return float(np.mean(data.labels)), "no-answer baseline"

    def encode(self, tokenizer, data: TaskData, max_length: int, ids: np.ndarray | None = None, cache_dir=None) -> Encoded:
        ids = data.example_ids if ids is None else np.asarray(ids, dtype=np.int64)
        examples = [data.examples[i] for i in ids]
        questions = _fit_questions(tokenizer, [e["question"].lstrip() for e in examples], max_length // 2)
        enc = tokenizer(questions, [e["context"] for e in examples], truncation="only_second", max_length=max_length,
                        stride=doc_stride(max_length), return_overflowing_tokens=True, return_offsets_mapping=True)
        example_index = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
        keys = [k for k in MODEL_KEYS if k in enc]
        features, targets, offsets = [], [], []
        for f, i in enumerate(example_index):
            in_context = np.array([s == 1 for s in enc.sequence_ids(f)])
            off = np.asarray(enc["offset_mapping"][f], dtype=np.int64).reshape(-1, 2)
            off[~in_context] = -1
            features.append({k: enc[k][f] for k in keys})
            offsets.append(off)
            targets.append(_targets(examples[i], off))
        targets = np.array(targets, dtype=np.int64).reshape(-1, 2)
        relevant = targets[:, 0] != NULL_INDEX
        has_answer_feature = np.zeros(len(ids), dtype=bool)
        has_answer_feature[example_index[relevant]] = True
        relevant |= ~has_answer_feature[example_index]
        return Encoded(features=features, targets=targets, example_index=example_index, n_examples=len(ids),
                       relevant=relevant, offsets=offsets, ids=ids)

    def collate(self, tokenizer, features: list[dict], indices: np.ndarray, device) -> dict[str, torch.Tensor]:
        batch = tokenizer.pad([features[i] for i in indices], padding_side="right", return_tensors="pt")
        return {k: v.to(device) for k, v in batch.items()}

    def forward(self, net, inputs: dict) -> torch.Tensor:
        out = net(**inputs)
        logits = torch.stack([out.start_logits, out.end_logits], 1)
        return logits.masked_fill(inputs["attention_mask"][:, None] == 0, float("-inf"))

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The mean of the start and end cross-entropies. Class weights do not apply to positions (config.py
        refuses --class-weight for QA), so `weight` is always None here."""
        return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())

    def statistics(self, logits: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
        return qa_statistics(logits, targets)

    def unbatch(self, logits: np.ndarray, inputs: dict) -> list[np.ndarray]:
        lengths = inputs["attention_mask"].sum(1).cpu().numpy()
        return [row[:, :n] for row, n in zip(logits, lengths)]

    def metrics_of(self, outputs: list[np.ndarray], data: TaskData, encoded: Encoded) -> dict[str, float]:
        examples = [data.examples[i] for i in encoded.ids]
        predictions = predict_answers(outputs, encoded, [e["context"] for e in examples])
        return squad_v2_scores([e["answers"] for e in examples], predictions)


def _answers(value) -> tuple[list[str] | None, list[int] | None]:
    if not isinstance(value, dict):
        return None, None
    texts, starts = as_list(value.get("text")), as_list(value.get("answer_start"))
    if texts is None or starts is None or len(texts) != len(starts):
        return None, None
    try:
        return texts, [int(s) for s in starts]
    except (TypeError, ValueError):
        return None, None


def _fit_questions(tokenizer, questions: list[str], limit: int) -> list[str]:
    """Questions cut to `limit` tokens, so that every window keeps room for the context."""
    enc = tokenizer(questions, add_special_tokens=False, return_offsets_mapping=True)
    return [q if len(off) <= limit else q[: off[limit - 1][1]] for q, off in zip(questions, enc["offset_mapping"])]


def _targets(example: dict, offsets: np.ndarray) -> tuple[int, int]:
    """Gold (start, end) token positions of the first answer in this window, or the null position."""
    if not example["answers"]:
        return NULL_INDEX, NULL_INDEX
    a_start = example["starts"][0]
    a_end = a_start + len(example["answers"][0])
    context = np.flatnonzero(offsets[:, 0] >= 0)
    if offsets[context[0], 0] > a_start or offsets[context[-1], 1] < a_end:
        return NULL_INDEX, NULL_INDEX  # the answer is not wholly inside this window
    start = context[offsets[context, 0] <= a_start][-1]  # the last token starting at or before the answer
    end = context[offsets[context, 1] >= a_end][0]  # the first token ending at or after it
    return int(start), int(end)


def best_span(start: np.ndarray, end: np.ndarray, valid: np.ndarray, max_tokens: int = MAX_ANSWER_TOKENS) -> tuple[float, int, int]:
    """The span (s, e) of valid tokens with s <= e < s + max_tokens and the largest start[s] + end[e]:
    (score, s, e), or (-inf, -1, -1) when there is none."""
    s, e = np.where(valid, start, -np.inf), np.where(valid, end, -np.inf)
    best = (-np.inf, -1, -1)
    for d in range(min(max_tokens, len(s))):
        scores = s[: len(s) - d] + e[d:]
        k = int(np.argmax(scores))
        if scores[k] > best[0]:
            best = (float(scores[k]), k, k + d)
    return best


def predict_answers(outputs: list[np.ndarray], encoded: Encoded, contexts: list[str]) -> list[str]:
    """Each question's answer text from its features' (2, tokens) start/end logits, "" for no answer."""
    best = [(-np.inf, -1, -1, -1)] * encoded.n_examples  # (score, feature, start, end)
    null = np.full(encoded.n_examples, np.inf)
    for f, (out, i) in enumerate(zip(outputs, encoded.example_index)):
        null[i] = min(null[i], float(out[0, NULL_INDEX] + out[1, NULL_INDEX]))
        score, s, e = best_span(out[0], out[1], encoded.offsets[f][: out.shape[1], 0] >= 0)
        if score > best[i][0]:
            best[i] = (score, f, s, e)
    answers = []
    for i, (score, f, s, e) in enumerate(best):
        if f < 0 or null[i] > score:
            answers.append("")
        else:
            answers.append(contexts[i][encoded.offsets[f][s, 0] : encoded.offsets[f][e, 1]])
    return answers
