"""Text and text-pair classification: the base task's behaviour, with data read by data.load_data and
encoded into flat token arrays (data.encoded), cached when a cache folder is given."""
from __future__ import annotations

import torch

from ..data import TokenArrays, cached_tokenize, load_data, tokenize
from .base import Encoded, Task


class Classification(Task):
    """Text (or text-pair) classification: data.load_data, and data.encoded's arrays as features."""

    def load(self, source: str, *, table=None, **kw):
        return load_data(source, _table=table, **kw)

    def encode(self, tokenizer, data, max_length: int, ids=None, cache_dir=None) -> Encoded:
        if ids is not None:
            texts, pairs = [data.texts[i] for i in ids], [data.pairs[i] for i in ids] if data.pairs else None
            return Encoded.one_per_example(tokenize(tokenizer, texts, pairs, max_length), data.labels[ids])
        if cache_dir is None:
            arrays = tokenize(tokenizer, data.texts, data.pairs, max_length)
        else:
            arrays = cached_tokenize(tokenizer, data.texts, data.pairs, max_length, data_fingerprint=data.fingerprint, cache_dir=cache_dir)
        return Encoded.one_per_example(arrays, data.labels)

    def lengths(self, features: TokenArrays):
        return features.lengths()

    def collate(self, tokenizer, features: TokenArrays, indices, device) -> dict[str, torch.Tensor]:
        batch = features.padded(indices, tokenizer.pad_token_id, tokenizer.padding_side)
        return {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
