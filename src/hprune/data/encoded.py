"""Tokenized texts as flat arrays: every example's tokens end to end in one buffer of the narrowest integer
type that holds the vocabulary, with offsets, so a million short rows take tens of MB instead of the GBs of
per-example Python lists. Attention masks are derived (the rows are unpadded: all ones); token types are
kept, one byte per token, only for text pairs (a single text's are all 0).

Built in batches by the tokenizer and saved to a cache folder keyed by the data's fingerprint, the
tokenizer and the max length, then memory-mapped: a second command on the same data skips tokenizing, and
worker processes (and torchrun ranks) map the same pages instead of receiving a pickled copy.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from itertools import chain
from pathlib import Path

import numpy as np
from filelock import FileLock

from ..io import atomic_path

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the files' layout changes: older entries are then simply not found
BATCH_ROWS = 10_000  # rows per tokenizer call: big enough for the fast tokenizer, small enough for its Python lists
ARRAYS = ("input_ids", "offsets", "token_type_ids")
MODEL_KEYS = ("input_ids", "attention_mask", "token_type_ids")  # the model inputs a tokenizer may give


class TokenArrays:
    """Unpadded token ids of n examples: example i is `input_ids[offsets[i]:offsets[i + 1]]`. `keys`: the
    model inputs the tokenizer gives (input_ids, attention_mask and, for BERT-like models, token_type_ids).
    Mapped from a cache folder (`folder`), it pickles as that folder's path: a worker maps the file itself."""

    def __init__(self, input_ids: np.ndarray, offsets: np.ndarray, token_type_ids: np.ndarray | None, keys: tuple[str, ...],
                 folder: Path | None = None):
        self.input_ids, self.offsets, self.token_type_ids = input_ids, offsets, token_type_ids
        self.keys, self.folder = tuple(keys), folder

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __reduce__(self):
        if self.folder is not None:
            return open_cached, (self.folder,)
        return TokenArrays, (self.input_ids, self.offsets, self.token_type_ids, self.keys)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.input_ids, self.offsets, self.token_type_ids) if a is not None)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def in_memory(self) -> "TokenArrays":
        """A copy held in memory, pickled by value: for workers that cannot see the cache folder (a Ray cluster)."""
        copy = [None if a is None else np.array(a) for a in (self.input_ids, self.offsets, self.token_type_ids)]
        return TokenArrays(*copy, self.keys)

    def padded(self, indices: np.ndarray, pad_id: int, padding_side: str = "right") -> dict[str, np.ndarray]:
        """The examples at `indices` as (batch, longest) int64 arrays of the model inputs, as tokenizer.pad makes
        them: ids padded with `pad_id`, token types with 0, attention mask 1 on the tokens."""
        starts, ends = self.offsets[indices], self.offsets[np.asarray(indices) + 1]
        lengths = (ends - starts).astype(np.int64)
        width = int(lengths.max())
        column = np.arange(width)
        if padding_side == "left":
            mask = column >= (width - lengths)[:, None]
        else:
            mask = column < lengths[:, None]
        positions = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum())
        out = {"input_ids": np.full(mask.shape, pad_id, dtype=np.int64)}
        out["input_ids"][mask] = self.input_ids[positions]
        if "token_type_ids" in self.keys:
            out["token_type_ids"] = np.zeros(mask.shape, dtype=np.int64)
            if self.token_type_ids is not None:
                out["token_type_ids"][mask] = self.token_type_ids[positions]
        if "attention_mask" in self.keys:
            out["attention_mask"] = mask.astype(np.int64)
        return out


def tokenize(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int) -> TokenArrays:
    """Tokenize without padding (padding happens per batch, to the batch's longest example), BATCH_ROWS rows
    at a time, into flat arrays."""
    dtype = np.min_scalar_type(max(len(tokenizer), 1) - 1)
    ids, types, lengths, keys = [], [], [], ("input_ids",)
    for start in range(0, len(texts), BATCH_ROWS):
        end = start + BATCH_ROWS
        enc = tokenizer(texts[start:end], pairs[start:end] if pairs else None, truncation=True, max_length=max_length)
        keys = tuple(k for k in MODEL_KEYS if k in enc)
        batch_lengths = np.fromiter(map(len, enc["input_ids"]), dtype=np.int64, count=len(enc["input_ids"]))
        total = int(batch_lengths.sum())
        ids.append(np.fromiter(chain.from_iterable(enc["input_ids"]), dtype=np.int64, count=total).astype(dtype))
        if pairs and "token_type_ids" in enc:
            types.append(np.fromiter(chain.from_iterable(enc["token_type_ids"]), dtype=np.int64, count=total).astype(np.uint8))
        lengths.append(batch_lengths)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(lengths) if lengths else [], out=offsets[1:])
    return TokenArrays(np.concatenate(ids) if ids else np.zeros(0, dtype), offsets, np.concatenate(types) if types else None, keys)


def tokenizer_fingerprint(tokenizer) -> str:
    """What decides a tokenizer's output: its class, truncation side and full definition (vocabulary, normalizer,
    special tokens: a fast tokenizer's JSON; else its vocabulary and special tokens), hashed."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # without the truncation and padding state that each call sets
        definition = json.dumps({k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")})
    else:
        definition = json.dumps([sorted(tokenizer.get_vocab().items()), str(tokenizer.special_tokens_map)])
    h = hashlib.sha256(f"{type(tokenizer).__name__}\n{tokenizer.truncation_side}\n".encode())
    h.update(definition.encode())
    return h.hexdigest()[:16]


def cache_key(data_fingerprint: str, tokenizer, max_length: int) -> str:
    parts = [CACHE_FORMAT, data_fingerprint, tokenizer_fingerprint(tokenizer), max_length]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]


def cached_tokenize(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int, *, data_fingerprint: str,
                    cache_dir: Path) -> TokenArrays:
    """`tokenize`, saved under `cache_dir` and memory-mapped; a later call with the same data, tokenizer and max
    length maps the saved arrays. A folder that cannot be read back is rebuilt with a one-line warning.
    Processes that ask at once (torchrun ranks) wait for the first to build it."""
    folder = Path(cache_dir) / cache_key(data_fingerprint, tokenizer, max_length)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{folder}.lock"):
        if folder.exists():
            try:
                arrays = open_cached(folder)
                if len(arrays) == len(texts):
                    return arrays
                raise ValueError(f"{len(arrays)} examples, expected {len(texts)}")
            except (OSError, ValueError, KeyError) as e:
                log.warning(f"the tokenized-data cache {folder} is unreadable ({str(e).splitlines()[0][:120]}); tokenizing again")
                shutil.rmtree(folder)
        arrays = tokenize(tokenizer, texts, pairs, max_length)
        with atomic_path(folder, folder=True) as tmp:
            for name in ARRAYS:
                if getattr(arrays, name) is not None:
                    np.save(tmp / f"{name}.npy", getattr(arrays, name))
            (tmp / "meta.json").write_text(json.dumps({"format": CACHE_FORMAT, "examples": len(arrays), "keys": list(arrays.keys)}))
        return open_cached(folder)


def open_cached(folder: Path) -> TokenArrays:
    """The arrays saved in a cache folder, memory-mapped read-only; ValueError when they do not fit together."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    loaded = {name: np.load(folder / f"{name}.npy", mmap_mode="r") if (folder / f"{name}.npy").exists() else None for name in ARRAYS}
    ids, offsets, types = loaded["input_ids"], loaded["offsets"], loaded["token_type_ids"]
    if (meta.get("format") != CACHE_FORMAT or ids is None or offsets is None or len(offsets) != meta["examples"] + 1
            or offsets[0] != 0 or offsets[-1] != len(ids) or (types is not None and len(types) != len(ids))):
        raise ValueError("the arrays do not fit together")
    return TokenArrays(ids, offsets, types, tuple(meta["keys"]), folder=folder)
