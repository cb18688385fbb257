"""Text and text-pair classification: the base task's behaviour, with data read by data.load_data."""
from __future__ import annotations

from ..data import load_data
from .base import MODEL_KEYS, Encoded, Task


def encode(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> list[dict]:
    """Tokenize once, without padding: padding happens per batch, to the batch's longest example."""
    enc = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    keys = [k for k in MODEL_KEYS if k in enc]
    return [{k: enc[k][i] for k in keys} for i in range(len(texts))]


class Classification(Task):
    """Text (or text-pair) classification: data.load_data and `encode`."""

    def load(self, source: str, *, table=None, **kw):
        return load_data(source, _table=table, **kw)

    def encode(self, tokenizer, data, max_length: int, ids=None) -> Encoded:
        if ids is None:
            return Encoded.one_per_example(encode(tokenizer, data.texts, data.pairs, max_length), data.labels)
        texts, pairs = [data.texts[i] for i in ids], [data.pairs[i] for i in ids] if data.pairs else None
        return Encoded.one_per_example(encode(tokenizer, texts, pairs, max_length), data.labels[ids])
