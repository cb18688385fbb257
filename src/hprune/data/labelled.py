"""Classification data: the text (or text pair) and label columns detected, labels mapped to ids, and a
content fingerprint. The fingerprint hashes the content used for training in row order: a different or
reordered file gets a different fingerprint.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import HpruneError
from .tables import read_table, source_name

PAIR_COLUMNS = [("text_a", "text_b"), ("sentence1", "sentence2"), ("premise", "hypothesis"), ("question1", "question2")]
SINGLE_COLUMNS = ["text", "sentence"]
LABEL_COLUMNS = ["label", "labels"]
_INT = re.compile(r"^-?\d+$")
FINGERPRINT_ROWS = 100_000  # rows hashed at a time


@dataclass
class LabelledData:
    """A classification dataset as the user gave it, plus the parsed columns hprune trains on."""

    source: str
    frame: pd.DataFrame  # the user's rows and columns, unchanged
    records: Sequence[dict] | None  # the parsed JSON objects (data.tables.JsonLines), for a byte-faithful JSONL export
    text_column: str
    pair_column: str | None
    label_column: str
    texts: list[str]
    pairs: list[str] | None
    labels: np.ndarray  # label ids, indexes into label_names
    label_names: list[str]
    fingerprint: str

    @property
    def example_ids(self) -> np.ndarray:
        return np.arange(len(self.texts), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.texts)


def load_data(
    source,
    *,
    text_column: str | None = None,
    pair_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    _table: tuple[pd.DataFrame, list[dict] | None] | None = None,
) -> LabelledData:
    """Load and validate a labelled dataset: a path, a `save_to_disk` folder, a hub name, a pandas DataFrame,
    a `datasets.Dataset` or a list of dicts (data.tables.read_table).

    `label_names` fixes the label map (use the training set's for an evaluation set); without it the
    map is built from the data: integers in numeric order, strings in sorted order. `_table`: the
    source already read by `read_table` (hprune.tasks reads it once to detect the task kind).
    """
    frame, records = _table if _table is not None else read_table(source)
    source = source_name(source)
    if frame.empty:
        raise HpruneError(f"{source} has no rows; give a file with at least one labelled example")
    text_column, pair_column = _text_columns(frame, source, text_column, pair_column)
    label_column = _label_column(frame, source, label_column)
    texts = _texts(frame, text_column, source)
    pairs = _texts(frame, pair_column, source) if pair_column else None
    raw_labels = _raw_labels(frame[label_column], label_column, source)
    if label_names is None:
        label_names = _label_names(raw_labels)
        if len(label_names) < 2:
            raise HpruneError(
                f"{source} has a single class ({label_names[0]!r}) in column {label_column!r}; "
                "scoring needs at least two classes"
            )
    index = {name: k for k, name in enumerate(label_names)}
    unseen = sorted(set(raw_labels) - set(index))
    if unseen:
        raise HpruneError(
            f"{source} has labels never seen in training: {', '.join(map(repr, unseen[:5]))}; "
            f"known labels are {', '.join(map(repr, label_names))}"
        )
    labels = np.array([index[x] for x in raw_labels], dtype=np.int64)
    return LabelledData(
        source=str(source),
        frame=frame,
        records=records,
        text_column=text_column,
        pair_column=pair_column,
        label_column=label_column,
        texts=texts,
        pairs=pairs,
        labels=labels,
        label_names=list(label_names),
        fingerprint=fingerprint(texts, pairs, [label_names[k] for k in labels]),
    )


def fingerprint(texts: list[str], pairs: list[str] | None, labels: list[str]) -> str:
    """sha256 of the (text, pair, label) rows in order as JSON lines, shortened to 16 hex digits. Each row is
    written as json.dumps writes it, by json's own string encoder, without json.dumps's cost per call (16 s
    on a million rows)."""
    quote = json.encoder.encode_basestring  # what json.dumps(..., ensure_ascii=False) uses for a string
    quoted_labels = {y: quote(y) for y in set(labels)}
    h = hashlib.sha256()
    for start in range(0, len(texts), FINGERPRINT_ROWS):
        end = start + FINGERPRINT_ROWS
        seconds = map(quote, pairs[start:end]) if pairs else ["null"] * len(texts[start:end])
        rows = [f"[{quote(t)}, {p}, {quoted_labels[y]}]\n" for t, p, y in zip(texts[start:end], seconds, labels[start:end])]
        h.update("".join(rows).encode())
    return h.hexdigest()[:16]


def _text_columns(frame, source, text_column, pair_column) -> tuple[str, str | None]:
    for col, option in ((text_column, "--text-column"), (pair_column, "--text-pair-column")):
        if col is not None and col not in frame.columns:
            raise HpruneError(f"{option} {col!r} is not a column of {source}; its columns are {', '.join(map(str, frame.columns))}")
    if pair_column is not None and text_column is None:
        raise HpruneError(f"--text-pair-column {pair_column!r} needs --text-column too (the first text of each pair)")
    if text_column is not None:
        return text_column, pair_column
    for a, b in PAIR_COLUMNS:
        if a in frame.columns and b in frame.columns:
            return a, b
    for a in SINGLE_COLUMNS:
        if a in frame.columns:
            return a, None
    raise HpruneError(
        f"no text column found in {source} (looked for {', '.join(SINGLE_COLUMNS)} and the pairs "
        f"{', '.join('/'.join(p) for p in PAIR_COLUMNS)}); name it with --text-column"
    )


def _label_column(frame, source, label_column) -> str:
    if label_column is not None:
        if label_column not in frame.columns:
            raise HpruneError(f"--label-column {label_column!r} is not a column of {source}; its columns are {', '.join(map(str, frame.columns))}")
        return label_column
    for c in LABEL_COLUMNS:
        if c in frame.columns:
            return c
    raise HpruneError(f"no label column found in {source} (looked for {', '.join(LABEL_COLUMNS)}); name it with --label-column")


def _texts(frame, column, source) -> list[str]:
    values = frame[column].tolist()
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        rows = ", ".join(map(str, bad[:5])) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise HpruneError(f"{source}: empty, missing or non-text value in column {column!r} at row {rows}; fill or remove those rows")
    return values


def _raw_labels(series: pd.Series, column: str, source: str) -> list[str]:
    """Labels as canonical strings: integers (also 1.0 or '1') become '1'; other values stay as text."""
    out, missing = [], []
    for i, v in enumerate(series.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip()):
            missing.append(i)
            continue
        if isinstance(v, (bool, np.bool_)):
            v = int(v)
        if isinstance(v, (float, np.floating)) and float(v).is_integer():
            v = int(v)
        out.append(str(v).strip())
    if missing:
        rows = ", ".join(map(str, missing[:5])) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise HpruneError(f"{source}: missing label in column {column!r} at row {rows}; label or remove those rows")
    return out


def _label_names(raw: list[str]) -> list[str]:
    names = set(raw)
    if all(_INT.match(x) for x in names):
        return sorted(names, key=int)
    return sorted(names)
