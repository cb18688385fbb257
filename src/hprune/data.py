"""Loading labelled text data: files, `save_to_disk` folders or hub datasets, with stable example ids.

An example's id is its row in the user's file (0-based, header and blank lines not counted), so
scores, subsets and exports always refer to the user's own rows. The fingerprint hashes the content
used for training in row order: a different or reordered file gets a different fingerprint.
"""
from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import HpruneError

FILE_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
PAIR_COLUMNS = [("text_a", "text_b"), ("sentence1", "sentence2"), ("premise", "hypothesis"), ("question1", "question2")]
SINGLE_COLUMNS = ["text", "sentence"]
LABEL_COLUMNS = ["label", "labels"]
_INT = re.compile(r"^-?\d+$")


@dataclass
class LabelledData:
    """A classification dataset as the user gave it, plus the parsed columns hprune trains on."""

    source: str
    frame: pd.DataFrame  # the user's rows and columns, unchanged
    records: list[dict] | None  # the parsed JSON objects, for a byte-faithful JSONL export
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
    source: str,
    *,
    text_column: str | None = None,
    pair_column: str | None = None,
    label_column: str | None = None,
    label_names: list[str] | None = None,
    _table: tuple[pd.DataFrame, list[dict] | None] | None = None,
) -> LabelledData:
    """Load and validate a labelled dataset.

    `label_names` fixes the label map (use the training set's for an evaluation set); without it the
    map is built from the data: integers in numeric order, strings in sorted order. `_table`: the
    source already read by `read_table` (hprune.tasks reads it once to detect the task kind).
    """
    frame, records = _table if _table is not None else read_table(source)
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
    """sha256 of the (text, pair, label) rows in order, shortened to 16 hex digits."""
    h = hashlib.sha256()
    for i, (t, y) in enumerate(zip(texts, labels)):
        row = [t, pairs[i] if pairs else None, y]
        h.update(json.dumps(row, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def read_table(source: str) -> tuple[pd.DataFrame, list[dict] | None]:
    """Read a file, a `save_to_disk` folder, or `NAME[:SPLIT]` from the hub, into a data frame."""
    path = Path(source).expanduser()
    if path.is_dir():
        return _read_saved_dataset(path), None
    if path.is_file():
        fmt = FILE_FORMATS.get(path.suffix.lower())
        if fmt is None:
            raise HpruneError(
                f"unknown format {path.suffix or '(no extension)'!r} for {source}; "
                f"use one of {', '.join(FILE_FORMATS)}, or a folder written by datasets.save_to_disk"
            )
        if path.stat().st_size == 0:
            raise HpruneError(f"{source} is empty; give a file with at least one labelled example")
        if fmt == "parquet":  # binary: no UTF-8 check
            return _read_parquet(path), None
        text = _read_utf8(path)
        if fmt == "jsonl":
            records = _parse_json(text, source)
            return pd.DataFrame.from_records(records), records
        return _parse_csv(path, "\t" if fmt == "tsv" else ","), None
    if path.suffix.lower() in FILE_FORMATS or source.startswith((".", "/", "~")):
        raise HpruneError(f"{source} does not exist; check the path")
    return _read_hub_dataset(source), None


def write_rows(data: LabelledData, example_ids: np.ndarray, path: Path) -> None:
    """Write the given rows of the user's data, columns unchanged, in the format of `path`'s suffix."""
    fmt = FILE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise HpruneError(f"unknown output format {path.suffix!r} for {path}; use one of {', '.join(FILE_FORMATS)}")
    example_ids = np.asarray(example_ids, dtype=np.int64)
    if fmt == "jsonl":
        records = data.records or data.frame.to_dict(orient="records")
        with open(path, "w", encoding="utf-8") as f:
            for i in example_ids:
                f.write(json.dumps(records[i], ensure_ascii=False) + "\n")
    elif fmt == "parquet":
        try:
            data.frame.iloc[example_ids].to_parquet(path, index=False)
        except (TypeError, ValueError) as e:  # pyarrow: a column that mixes types, e.g. labels 1 and "1"
            column = m[1] if (m := re.search(r"column (.+?) with type", str(e))) else "a column"
            raise HpruneError(f"cannot write parquet: {column} mixes value types (e.g. 1 and \"1\"); export to .jsonl or .csv instead") from None
    else:
        data.frame.iloc[example_ids].to_csv(path, index=False, sep="\t" if fmt == "tsv" else ",")


def _read_utf8(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise HpruneError(f"{path} is not UTF-8 (bad byte at line {line}); re-save the file as UTF-8") from None


def _parse_json(text: str, source: str) -> list[dict]:
    text = text.removeprefix("\ufeff")  # a byte-order mark, as some editors write
    if text.lstrip().startswith("["):
        try:
            records = json.loads(text)
        except json.JSONDecodeError as e:
            raise HpruneError(f"{source} line {e.lineno}: malformed JSON ({e.msg}); fix or remove that line") from None
        where = [f"record {k}" for k in range(len(records))]
    else:
        records, where = [], []
        # Split on newlines only: str.splitlines() also splits at U+2028 and friends, legal inside JSON strings.
        for lineno, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                if lineno == 1 and _is_one_object(text):
                    raise HpruneError(f"{source} holds one JSON object, not one object per line; give JSON lines or a JSON array of objects") from None
                raise HpruneError(f"{source} line {lineno}: malformed JSON ({e.msg}); fix or remove that line") from None
            where.append(f"line {lineno}")
    for rec, at in zip(records, where):
        if not isinstance(rec, dict):
            raise HpruneError(f"{source} {at}: expected a JSON object with named fields, got {type(rec).__name__}; fix or remove it")
    return records


def _is_one_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text), dict)
    except json.JSONDecodeError:
        return False


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:  # pyarrow's ArrowInvalid is a ValueError
        detail = str(e).strip().splitlines()[0].split(". ")[0] if str(e).strip() else type(e).__name__
        raise HpruneError(f"{path} is not a readable parquet file ({detail[:200]}); re-export it, or give .jsonl/.csv") from None


def _parse_csv(path: Path, sep: str) -> pd.DataFrame:
    # Read every cell as a string so that an export writes back exactly what was read.
    try:
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False, quoting=csv.QUOTE_MINIMAL)
    except pd.errors.ParserError as e:
        detail = str(e).strip().splitlines()[-1]
        if m := re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", detail):
            where, detail = f"line {m[2]}", f"{m[3]} fields where the header has {m[1]}; quote cells that hold {sep!r}"
        elif m := re.search(r"EOF inside string starting at row (\d+)", detail):
            where, detail = f"line {int(m[1]) + 1}", "a quote opened here is never closed"
        else:
            where = "a row"
        kind = "TSV" if sep == "\t" else "CSV"
        raise HpruneError(f"{path} {where}: malformed {kind} row ({detail}); fix or remove that line") from None
    except pd.errors.EmptyDataError:
        raise HpruneError(f"{path} is empty; give a file with a header and at least one row") from None


def _read_saved_dataset(path: Path) -> pd.DataFrame:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError:
        raise HpruneError(f"{path} is a folder but not one written by datasets.save_to_disk; give a data file") from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise HpruneError(f"{path} holds splits {', '.join(ds)}; point at one split's folder, e.g. {path}/{next(iter(ds))}")
        ds = ds["train"]
    return ds.to_pandas()


def _read_hub_dataset(source: str) -> pd.DataFrame:
    import datasets

    name, _, split = source.partition(":")
    try:
        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as e:  # the hub raises many types; all mean the same to the user
        raise HpruneError(
            f"{source} is not a local file and could not be loaded from the Hugging Face hub "
            f"({type(e).__name__}); check the path, or the dataset name and your network"
        ) from None
    return ds.to_pandas()


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
