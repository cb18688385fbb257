"""Tables in and out: read a data file, a `save_to_disk` folder or a hub dataset into a data frame (with the
parsed JSON records, for a byte-faithful export), and write chosen rows back in any of the formats.

An example's id is its row in the user's file (0-based, header and blank lines not counted), so scores,
subsets and exports always refer to the user's own rows.
"""
from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import HpruneError

FILE_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
DATASET_FOLDER = "save_to_disk"  # an output path without an extension: a folder that datasets.load_from_disk reads


def source_name(source) -> str:
    """How messages and manifests name a data source: a path as given, rows in memory by their type."""
    if isinstance(source, pd.DataFrame):
        return "the DataFrame"
    if isinstance(source, list):
        return "the list of rows"
    if _is_dataset(source):
        return "the Dataset"
    return str(source)


def read_table(source) -> tuple[pd.DataFrame, Sequence[dict] | None]:
    """Read a file, a `save_to_disk` folder or `NAME[:SPLIT]` from the hub, or take rows in memory (a pandas
    DataFrame, a `datasets.Dataset`, a list of dicts), into a data frame; with the JSON records when there
    are some (a JSON lines file, a list of dicts), for a byte-faithful export."""
    if isinstance(source, pd.DataFrame):
        return source.reset_index(drop=True), None
    if isinstance(source, list):
        if not all(isinstance(row, dict) for row in source):
            raise HpruneError("a list of rows must hold one dict per row (column name -> value)")
        return pd.DataFrame.from_records(source), source
    if _is_dataset(source):
        return source.to_pandas(), None
    source = str(source)
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
        raw = path.read_bytes()
        _utf8(raw, path)  # every text format is checked; the columnar JSON reader then parses the bytes
        if fmt == "jsonl":
            if (columns := _read_flat_json_lines(path, raw)) is not None:
                return columns
            records = _parse_json(_utf8(raw, path), source)
            return pd.DataFrame.from_records(records), records
        return _parse_csv(path, "\t" if fmt == "tsv" else ","), None
    if path.suffix.lower() in FILE_FORMATS or source.startswith((".", "/", "~")):
        raise HpruneError(f"{source} does not exist; check the path")
    return _read_hub_dataset(source), None


def output_format(path: Path) -> str:
    """The format an output path asks for: its extension's, or a `save_to_disk` folder when it has none."""
    if not path.suffix:
        return DATASET_FOLDER
    if path.suffix.lower() not in FILE_FORMATS:
        raise HpruneError(f"unknown output format {path.suffix!r} for {path}; use one of {', '.join(FILE_FORMATS)}, "
                          "or no extension for a datasets save_to_disk folder")
    return FILE_FORMATS[path.suffix.lower()]


def write_rows(data, example_ids: np.ndarray, path: Path, fmt: str | None = None) -> None:
    """Write the given rows of the user's data (any loaded dataset: its `frame` and `records`), columns
    unchanged, in format `fmt` (default: the one `path` asks for, output_format)."""
    fmt = fmt or output_format(path)
    example_ids = np.asarray(example_ids, dtype=np.int64)
    if fmt == DATASET_FOLDER:
        import datasets

        datasets.Dataset.from_pandas(data.frame.iloc[example_ids], preserve_index=False).save_to_disk(str(path))
    elif fmt == "jsonl":
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


def _is_dataset(source) -> bool:
    """A `datasets.Dataset`, told by its methods so that `datasets` need not be imported to ask."""
    return hasattr(source, "to_pandas") and hasattr(source, "column_names")


class JsonLines(Sequence):
    """The records of a JSON lines file, each parsed when asked for from its line's byte span (16 bytes a row
    instead of a dict): what a byte-faithful export writes. The file is read again on first use, and must
    not have changed since it was loaded."""

    def __init__(self, path: Path, starts: np.ndarray, ends: np.ndarray):
        self.path, self.starts, self.ends = path, starts, ends
        self.stamp = _stamp(path)
        self._raw: bytes | None = None

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> dict:
        if self._raw is None:
            if _stamp(self.path) != self.stamp:
                raise HpruneError(f"{self.path} changed since it was read; run the command again")
            self._raw = self.path.read_bytes()
        return json.loads(self._raw[self.starts[i]:self.ends[i]])


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _read_flat_json_lines(path: Path, raw: bytes) -> tuple[pd.DataFrame, JsonLines] | None:
    """A JSON lines file of flat objects read by pyarrow's multi-threaded reader into columns, with no Python
    object per row but the cells. None when the file is anything else (a JSON array, a bad line, a column that
    mixes value types, nested values): the line-by-line parser then reads it, or names the line at fault."""
    import pyarrow as pa
    import pyarrow.json as pa_json

    if raw.startswith(b"\xef\xbb\xbf"):  # a byte-order mark: json.loads would refuse the first line's bytes
        return None
    try:
        table = pa_json.read_json(pa.BufferReader(raw), read_options=pa_json.ReadOptions(block_size=1 << 24))
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if any(pa.types.is_nested(t) for t in table.schema.types):
        return None
    rows = table.num_rows
    frame = table.to_pandas(split_blocks=True, self_destruct=True)  # frees the columns as they are converted
    del table
    data = np.frombuffer(raw, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    starts, ends = np.concatenate([[0], newlines + 1]), np.concatenate([newlines, [len(raw)]])
    filled = ends > starts
    for k in np.flatnonzero(filled & np.isin(data[np.minimum(starts, len(raw) - 1)], list(b" \t\r"))):
        filled[k] = bool(raw[starts[k]:ends[k]].strip())  # a line opening with white space may hold nothing else
    if filled.sum() != rows:  # e.g. two objects on one line
        return None
    return frame, JsonLines(path, starts[filled], ends[filled])


def _utf8(raw: bytes, path: Path) -> str:
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
