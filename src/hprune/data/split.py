"""`hprune split`: split one data file into train and eval parts by a grouping column, seeded.

For data that comes with a single usable split, such as SQuAD v2 offline (its official train set is
not available here; only validation is): grouping by `title` keeps every article wholly on one side,
so no passage is both trained and evaluated on. Rows are written unchanged, in the file's order, with
`split.json` beside them saying how the parts were made: an experiment on them is on our own split,
not on the official one, and must say so.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .tables import read_table
from ..errors import HpruneError
from ..io import _json_default, atomic_path, ensure_writable, write_json

PARTS = ("train.jsonl", "eval.jsonl")
SPLIT_FILE = "split.json"


def split_by_group(source: str, out: str | Path, *, by: str = "title", eval_fraction: float = 0.2, seed: int = 0) -> dict:
    """Write OUT/train.jsonl and OUT/eval.jsonl: whole groups (rows sharing `by`), drawn in a seeded
    random order into eval until it holds at least `eval_fraction` of the rows (at least one group,
    never all). Returns what split.json records."""
    frame, records = read_table(source)
    if frame.empty:
        raise HpruneError(f"{source} has no rows; nothing to split")
    if by not in frame.columns:
        raise HpruneError(f"--by {by!r} is not a column of {source}; its columns are {', '.join(map(str, frame.columns))}")
    if not 0 < eval_fraction < 1:
        raise HpruneError(f"--eval-fraction must be between 0 and 1, got {eval_fraction}")
    groups = frame[by].astype(str).to_numpy()
    names = list(dict.fromkeys(groups))  # in file order, so the draw depends on the seed and the file only
    if len(names) < 2:
        raise HpruneError(f"{source} has a single {by!r} value; splitting by it needs at least two")
    out = Path(out)
    _check_out(out, Path(source))
    sizes = {name: int(n) for name, n in zip(*np.unique(groups, return_counts=True))}
    eval_groups, n_eval = [], 0
    for k in np.random.default_rng(seed).permutation(len(names)):
        if n_eval >= eval_fraction * len(frame) or len(eval_groups) == len(names) - 1:
            break
        eval_groups.append(names[k])
        n_eval += sizes[names[k]]
    in_eval = np.isin(groups, eval_groups)
    rows = records if records is not None else frame.to_dict(orient="records")
    ensure_writable(out)
    for name, mask in zip(PARTS, (~in_eval, in_eval)):
        with atomic_path(out / name) as tmp, open(tmp, "w", encoding="utf-8") as f:
            for i in np.flatnonzero(mask):
                f.write(json.dumps(rows[i], ensure_ascii=False, default=_json_default) + "\n")
    info = {
        "source": str(Path(source).resolve()) if Path(source).exists() else source,
        "source_sha256": _sha256(Path(source)) if Path(source).is_file() else None,
        "by": by, "eval_fraction": eval_fraction, "seed": seed,
        "train": {"file": PARTS[0], "rows": int((~in_eval).sum()), "groups": [n for n in names if n not in eval_groups]},
        "eval": {"file": PARTS[1], "rows": int(in_eval.sum()), "groups": sorted(eval_groups, key=names.index)},
        "note": f"our own split of {Path(source).name} by {by!r}, not an official split; say so when reporting results on it",
    }
    write_json(out / SPLIT_FILE, info)
    return info


def _check_out(out: Path, source: Path) -> None:
    """Never overwrite the source, or files that an earlier `hprune split` did not write."""
    targets = [out / p for p in PARTS]
    if source.exists() and any(t.exists() and t.resolve() == source.resolve() for t in targets):
        raise HpruneError(f"--out {out} would overwrite the source {source}; choose another folder")
    if any(t.exists() for t in targets) and not (out / SPLIT_FILE).is_file():
        raise HpruneError(f"{out} already holds {' or '.join(PARTS)} not written by `hprune split`; choose another --out")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
