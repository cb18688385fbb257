"""Multiple choice (OpenBookQA, ARC, RACE, ...): rows `{"question", "choices": [...], "label": index}`,
with an optional `context` (a passage, RACE's article). One feature per question: the question (after
the context, when there is one) paired with each choice. Questions may have different numbers of
choices: a batch is padded to its largest count with masked dummy choices whose logits are -inf, so
they get no probability, no gradient and never win the argmax.

Per step, from the (batch x choices) logits: correct = the argmax over the real choices is the gold
index, gold probability = softmax over the choices, margin = gold logit minus the best other.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data import LABEL_COLUMNS, MODEL_KEYS, read_table
from ..errors import HpruneError
from .base import Encoded, Task, TaskData, as_list, content_fingerprint, is_text, require_columns, rows_message

QUESTION, CHOICES, CONTEXT = "question", "choices", "context"


class MultipleChoice(Task):
    name = "multiple-choice"
    metrics = ("accuracy",)
    ragged = True

    def load(self, source: str, *, label_column: str | None = None, label_names=None, table=None, **_) -> TaskData:
        frame, records = table if table is not None else read_table(source)
        if frame.empty:
            raise HpruneError(f"{source} has no rows; give a file with at least one question")
        label_column = label_column or next((c for c in LABEL_COLUMNS if c in frame.columns), "label")
        require_columns(frame, source, [QUESTION, CHOICES, label_column], self.name)
        questions = frame[QUESTION].tolist()
        contexts = frame[CONTEXT].tolist() if CONTEXT in frame.columns else [None] * len(frame)
        choices = [as_list(v) for v in frame[CHOICES].tolist()]
        bad = [i for i, q in enumerate(questions) if not is_text(q)]
        if bad:
            raise rows_message(source, f"empty, missing or non-text {QUESTION!r}", bad, "fill or remove those rows")
        bad = [i for i, c in enumerate(choices) if c is None or len(c) < 2 or not all(is_text(x) for x in c)]
        if bad:
            raise rows_message(source, f"{CHOICES!r} is not a list of two or more non-empty texts", bad, "fix or remove those rows")
        bad = [i for i, c in enumerate(contexts) if c is not None and not isinstance(c, str) and not (isinstance(c, float) and np.isnan(c))]
        if bad:
            raise rows_message(source, f"non-text {CONTEXT!r}", bad, "give a text, an empty string or nothing")
        contexts = [c.strip() if isinstance(c, str) and c.strip() else None for c in contexts]
        gold = []
        for i, (y, c) in enumerate(zip(frame[label_column].tolist(), choices)):
            k = _index(y)
            if k is None or not 0 <= k < len(c):
                raise rows_message(source, f"label {y!r} in column {label_column!r} is not the index of one of the {len(c)} choices",
                                   [i], "give the 0-based index of the right choice")
            gold.append(k)
        examples = [{"context": ctx, "question": q, "choices": [str(x) for x in c], "gold": k}
                    for ctx, q, c, k in zip(contexts, questions, choices, gold)]
        n_names = max(len(c) for c in choices)
        return TaskData(
            task_type=self.name, source=str(source), frame=frame, records=records, examples=examples,
            labels=np.array(gold, dtype=np.int64), label_names=[str(k) for k in range(n_names)],
            fingerprint=content_fingerprint(self.name, ([e["context"], e["question"], e["choices"], e["gold"]] for e in examples)),
            text_column=QUESTION, pair_column=CONTEXT if CONTEXT in frame.columns else None, label_column=label_column,
        )

    def encode(self, tokenizer, data: TaskData, max_length: int, ids: np.ndarray | None = None, cache_dir=None) -> Encoded:
        """One feature per question: per choice, (context, question + choice) or (question, choice)."""
        ids = data.example_ids if ids is None else np.asarray(ids, dtype=np.int64)
        firsts, seconds, counts = [], [], []
        for i in ids:
            e = data.examples[i]
            for choice in e["choices"]:
                firsts.append(e["context"] if e["context"] else e["question"])
                seconds.append(f"{e['question']} {choice}" if e["context"] else choice)
            counts.append(len(e["choices"]))
        enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
        keys = [k for k in MODEL_KEYS if k in enc]
        bounds = np.concatenate([[0], np.cumsum(counts)])
        features = [{k: enc[k][a:b] for k in keys} for a, b in zip(bounds[:-1], bounds[1:])]
        return Encoded.one_per_example(features, [data.examples[i]["gold"] for i in ids])

    def lengths(self, features: list[dict]) -> np.ndarray:
        return np.array([max(len(x) for x in f["input_ids"]) for f in features])

    def collate(self, tokenizer, features: list[dict], indices: np.ndarray, device) -> dict[str, torch.Tensor]:
        """(batch, choices, tokens) inputs padded to the batch's most choices with copies of each
        question's first choice, and `choice_mask` (batch, choices): False for those copies."""
        chosen = [features[i] for i in indices]
        n = max(len(f["input_ids"]) for f in chosen)
        mask = torch.zeros(len(chosen), n, dtype=torch.bool)
        flat = []
        for b, f in enumerate(chosen):
            count = len(f["input_ids"])
            mask[b, :count] = True
            flat += [{k: v[j if j < count else 0] for k, v in f.items()} for j in range(n)]
        batch = tokenizer.pad(flat, return_tensors="pt")
        out = {k: v.view(len(chosen), n, -1).to(device) for k, v in batch.items()}
        out["choice_mask"] = mask.to(device)
        return out

    def forward(self, net, inputs: dict) -> torch.Tensor:
        inputs = dict(inputs)
        mask = inputs.pop("choice_mask")
        return net(**inputs).logits.masked_fill(~mask, float("-inf"))

    def unbatch(self, logits: np.ndarray, inputs: dict) -> list[np.ndarray]:
        return [row[m] for row, m in zip(logits, inputs["choice_mask"].cpu().numpy())]

    def metrics_of(self, outputs: list[np.ndarray], data, encoded: Encoded) -> dict[str, float]:
        return {"accuracy": float(np.mean([int(np.argmax(o)) == y for o, y in zip(outputs, encoded.targets)]))}


def _index(value) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None
