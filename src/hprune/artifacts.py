"""The scoring folder: what phase 1 writes (scores.parquet, subsets.json, manifest.json) and what every later
step reads and checks before it applies the scores (the fingerprint), and a subset's example ids."""
from __future__ import annotations

import platform
import sys
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from . import diagnostics
from .data import LabelledData, load_data
from .dynamics.store import RunDynamics, run_digests, stack_runs
from .errors import HpruneError
from .io import atomic_path, file_digest, file_problem, read_json, write_json
from .scores import score_table
from .subsets import choose, describe_subsets
from .tasks import load_task_data, task_of

SCORES_FILE, SUBSETS_FILE, MANIFEST_FILE = "scores.parquet", "subsets.json", "manifest.json"
OUTPUTS = (SCORES_FILE, SUBSETS_FILE)  # what the readers read beside the manifest


@dataclass
class Scoring:
    """A finished scoring: one row of scores per example, the automatic subsets and the manifest (learning
    report, warnings, settings, data); a subset as a mask over the scored rows, or as those rows."""

    scores: pd.DataFrame
    subsets: list[dict]
    manifest: dict
    dynamics: dict[str, np.ndarray] | None = None  # the (runs, epochs, examples) arrays, when just scored

    @property
    def learning_report(self) -> dict:
        return self.manifest["learning_report"]

    @property
    def warnings(self) -> list[str]:
        return self.manifest.get("warnings", [])

    def ids(self, name: str | None = None, *, fraction: float | None = None, size: int | None = None, method: str | None = None) -> np.ndarray:
        """The example ids (rows of the scored data) kept by automatic subset `name` (a name or a removed-H code;
        default the winning ticket), or by a budget: `fraction` of the rows or `size` rows, picked by `method`
        (default config.DEFAULT_SELECTION; subsets.BUDGET_METHODS lists them)."""
        return choose(self.scores, self.subsets, name=name, fraction=fraction, size=size, method=method)[0]

    def mask(self, name: str | None = None, **budget) -> np.ndarray:
        """True for the rows of the scored data that `ids(name, **budget)` keeps."""
        keep = np.zeros(self.manifest["n_examples"], dtype=bool)
        keep[self.ids(name, **budget)] = True
        return keep

    def select(self, data, name: str | None = None, *, allow_fingerprint_mismatch: bool = False, **budget):
        """The rows of `data` that `ids(name, **budget)` keeps, as the same type: a pandas DataFrame, a `datasets.Dataset`
        or a list of dicts (a path gives a DataFrame of the file's rows). `data` must be the scored data, in
        the scored order (the fingerprint is checked)."""
        ids = self.ids(name, **budget)
        loaded = load_scored_data(self.manifest, data)
        if check_fingerprint(self.manifest, loaded, allow_mismatch=allow_fingerprint_mismatch):
            warnings.warn(f"{loaded.source} is not the data that was scored; applying the scores row by row", stacklevel=2)
        if isinstance(data, pd.DataFrame):
            return data.iloc[ids]
        if isinstance(data, list):
            return [data[i] for i in ids]
        if hasattr(data, "select") and hasattr(data, "column_names"):  # a datasets.Dataset
            return data.select(ids)
        return loaded.frame.iloc[ids]


def write_scoring(out_dir: str | Path | None, runs: list[RunDynamics], run_info: list[dict], *, labels: np.ndarray,
                  label_names: list[str], config: dict, example_ids: np.ndarray | None = None, manifest: dict | None = None,
                  baseline: tuple[float, str] | None = None, advice: dict[str, str] = diagnostics.CLI_ADVICE) -> Scoring:
    """Scores, subsets, learning report and warnings of R recorded runs; with `out_dir`, also write
    scores.parquet, subsets.json and manifest.json (status complete, with the size and sha256 of those
    files and of every run's files, which `hprune verify` and the readers check) there, which `hprune
    subsets`, `export`, `train --subset` and `compare` read. Used by HScorer and by DynamicsTrainer (integrations.hf).

    `config` needs "runs", "seed" and "seeds" (the score maths and the learning report use them);
    `example_ids` are the ids of the arrays' columns (default 0..N-1); `manifest` holds the other
    manifest fields (data source, columns and fingerprint, timings, ...); `baseline` the (training
    accuracy, name) of a trivial predictor when it is not the majority class (QA: never answering);
    `advice` how the warnings name the settings (default hprune's options).
    """
    arrays = stack_runs(runs)
    ids = np.arange(len(labels), dtype=np.int64) if example_ids is None else np.asarray(example_ids, dtype=np.int64)
    scores = score_table(**arrays, example_ids=ids, labels=labels, label_names=label_names, seed=config["seed"])
    subsets = describe_subsets(scores, config["runs"])
    report = diagnostics.learning_report(arrays["correct"], labels, seeds=config["seeds"],
                                         eval_accuracy=[i.get("eval_accuracy", []) for i in run_info], baseline=baseline)
    found = diagnostics.learning_warnings(report, scores, subsets, config["runs"], config=config, advice=advice)
    manifest = {
        "config": config,
        **(manifest or {}),
        "status": "complete",
        "runs_info": run_info,
        "phase1_train_seconds": round(sum(i.get("train_seconds", 0.0) for i in run_info), 1),
        "learning_report": report,
        "warnings": found,
        "versions": _versions(),
    }
    if out_dir is not None:
        out = Path(out_dir)
        with atomic_path(out / SCORES_FILE) as tmp:
            scores.to_parquet(tmp, index=False)
        write_json(out / SUBSETS_FILE, subsets)
        manifest["files"] = {name: file_digest(out / name) for name in OUTPUTS}
        for r in range(len(runs)):
            manifest["files"].update(run_digests(out, r))
        write_json(out / MANIFEST_FILE, manifest)
    return Scoring(scores, subsets, manifest, dynamics=arrays)


def load_scoring(out_dir: str | Path) -> tuple[dict, pd.DataFrame, list[dict]]:
    """Manifest, scores and subsets of a finished scoring folder."""
    out = Path(out_dir)
    manifest = load_manifest(out)
    check_outputs(manifest, out)
    return manifest, pd.read_parquet(out / SCORES_FILE), read_json(out / SUBSETS_FILE)


def load_manifest(out: Path) -> dict:
    """The manifest of a finished scoring folder."""
    manifest_path = out / MANIFEST_FILE
    if not manifest_path.is_file():
        raise HpruneError(f"{out} is not an hprune scoring folder (no {MANIFEST_FILE}); run `hprune score --out {out}` first")
    manifest = _read_manifest(manifest_path)
    if not isinstance(manifest, dict) or not is_finished(manifest, out):
        raise HpruneError(f"the scoring in {out} did not finish; run the same `hprune score` command again to complete it")
    return manifest


def _read_manifest(path: Path):
    try:
        return read_json(path)
    except (ValueError, UnicodeDecodeError) as e:
        raise HpruneError(f"{path} is not valid JSON ({e}); run `hprune score` again with a new --out") from None


def check_outputs(manifest: dict, out: Path) -> None:
    """Refuse scores or subsets that are not the ones the scoring wrote (cut short, changed): they are what
    the user applies and shares. A scoring written before checksums were recorded is taken as it is."""
    recorded = manifest.get("files", {})
    for name in OUTPUTS:
        problem = file_problem(out / name, recorded[name]) if name in recorded else None
        if problem:
            raise HpruneError(f"{problem}; delete it and run the same `hprune score` command to write it again from the "
                              "recorded runs, or score again with a new --out")


def scoring_files(out: Path) -> dict[str, dict]:
    """The files a finished scoring recorded, with their size and sha256 (for `hprune verify`)."""
    manifest = load_manifest(out)
    if "files" not in manifest:
        raise HpruneError(f"{out / MANIFEST_FILE} records no checksums (written before hprune recorded them); nothing to verify")
    return manifest["files"]


def load(out_dir: str | Path) -> Scoring:
    """The finished scoring in `out_dir` (written by `hprune score`, HScorer or DynamicsTrainer)."""
    manifest, scores, subsets = load_scoring(out_dir)
    return Scoring(scores, subsets, manifest)


def load_scored_data(manifest: dict, source=None, **kw) -> LabelledData:
    """Data read with the columns the scoring used: the scored training file (the default), or another
    split of the same task, e.g. its evaluation file (pass `label_names`); a path or rows in memory.
    Multiple-choice and QA data (the manifest's task_type) come back as a tasks.TaskData."""
    source = manifest["train_source"] if source is None else source
    task_type = manifest.get("task_type", "classification")
    if task_type != "classification":
        label_column = manifest["label_column"] if task_type == "multiple-choice" else None
        return load_task_data(source, task_type=task_type, label_column=label_column)
    return load_data(
        source,
        text_column=manifest["text_column"], pair_column=manifest["pair_column"], label_column=manifest["label_column"], **kw,
    )


def check_fingerprint(manifest: dict, data: LabelledData, *, allow_mismatch: bool = False) -> bool:
    """Refuse to apply scores to a different or reordered file (the worst silent failure). Returns True
    when the data differs and `allow_mismatch` lets it through, so that the caller can warn."""
    if data.fingerprint == manifest["fingerprint"]:
        return False
    n_scored = manifest.get("n_examples")
    if n_scored is not None and len(data) != n_scored:
        raise HpruneError(
            f"{data.source} has {len(data)} rows (fingerprint {data.fingerprint}) but the scored data has {n_scored} "
            f"(fingerprint {manifest['fingerprint']}, {manifest.get('train_source')}); scores apply row by row, so give "
            "the scored file (--allow-fingerprint-mismatch cannot help when the row count differs)"
        )
    if not allow_mismatch:
        raise HpruneError(
            f"{data.source} (fingerprint {data.fingerprint}) is not the data that was scored (fingerprint {manifest['fingerprint']}, "
            f"{manifest.get('train_source')}); give the same file in the same order, or pass --allow-fingerprint-mismatch"
        )
    return True


def subset_ids(scoring_dir: str | Path, name: str | None, data, *, allow_mismatch: bool = False, **budget) -> tuple[np.ndarray, str, str | None]:
    """The example ids that automatic subset `name` or a budget (`fraction`, `size`, `method`: Scoring.ids) keeps
    in a finished scoring, applied to `data` (fingerprint checked); the choice in words; and the scored data's
    fingerprint when `data` differs from it (let through by `allow_mismatch`), else None."""
    scoring = load(scoring_dir)
    ids, chosen = choose(scoring.scores, scoring.subsets, name=name, **budget)
    mismatch = check_fingerprint(scoring.manifest, data, allow_mismatch=allow_mismatch)
    return ids, chosen, scoring.manifest["fingerprint"] if mismatch else None


def earlier_scoring(out: Path, identity: dict) -> dict | None:
    """The manifest of the scoring `out` holds, finished or not, if it is this one (same settings and data);
    None for a new folder. A folder holding a scoring with other settings or data is refused."""
    path = out / MANIFEST_FILE
    if not path.is_file():
        return None
    old = _read_manifest(path)
    was = {**old.get("config", {}), "training data fingerprint": old.get("fingerprint"), "eval data fingerprint": old.get("eval_fingerprint")}
    now = {**identity["config"], "training data fingerprint": identity["fingerprint"], "eval data fingerprint": identity["eval_fingerprint"]}
    diff = [f"{k} ({was.get(k)}, now {v})" for k, v in now.items() if was.get(k) != v and k != "seeds"]
    if diff:
        raise HpruneError(f"{out} holds a scoring with different {', '.join(diff)}; use a new --out, or delete {out} to start over")
    return old


def is_finished(manifest: dict, out: Path) -> bool:
    """The scores and subsets are written before the manifest says complete, so all must be there."""
    return manifest.get("status") == "complete" and all((out / name).is_file() for name in OUTPUTS)


def data_info(train: LabelledData) -> dict:
    source = Path(train.source).expanduser()
    return {
        # absolute, so that export and compare find the file from any working directory
        "train_source": str(source.resolve()) if source.exists() else train.source,
        "n_examples": len(train),
        "text_column": train.text_column,
        "pair_column": train.pair_column,
        "label_column": train.label_column,
        "label_names": train.label_names,
        "task_type": task_of(train).name,
    }


def _versions() -> dict:
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("hprune", "torch", "transformers", "numpy", "pandas"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out
