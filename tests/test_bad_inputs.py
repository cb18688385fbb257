"""Bad input, table-driven: every case exits 2 with exactly one `error: ...` line on stderr that names the
problem (and the fix), no traceback, and nothing new or half-written in the output folder."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import head_rows
from hprune.cli import main
from hprune.io import file_digest

ROW = '{"text": "What is a fish ?", "label": "DESC"}\n'
ROWS = ROW + '{"text": "Who was Nero ?", "label": "HUM"}\n'
SCORE = ["--model", "{model}", "--runs", "2", "--epochs", "1", "--out", "{out}", "--quiet"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_bert):
    """A finished scoring of 40 TREC rows, plus an evaluation file, shared by the cases that need one."""
    tmp = tmp_path_factory.mktemp("scored")
    train = head_rows("trec", "train", 40, tmp / "train.jsonl")
    head_rows("trec", "test", 20, tmp / "eval.jsonl")
    assert main(["score", "--train", str(train), "--model", tiny_bert, "--runs", "2", "--epochs", "1",
                 "--batch-size", "8", "--out", str(tmp / "scores"), "--quiet"]) == 0
    return tmp


def _reordered(path: Path, scored: Path) -> None:
    lines = (scored / "train.jsonl").read_text().splitlines()
    path.write_text("\n".join(lines[1:] + lines[:1]) + "\n")


def _spoilt_scoring(how: str):
    """A copy of the finished scoring, spoilt as `how` says."""
    def make(d: Path, scored: Path) -> None:
        shutil.copytree(scored / "scores", d)
        manifest = json.loads((d / "manifest.json").read_text())
        if how == "running":
            (d / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
            (d / "scores.parquet").unlink()
        elif how == "no-scores":
            (d / "scores.parquet").unlink()
        elif how == "torn-manifest":
            (d / "manifest.json").write_text(json.dumps(manifest)[:50])
        elif how == "changed-scores":
            scores = pd.read_parquet(d / "scores.parquet")
            scores.assign(h_score=scores["h_score"].iloc[::-1].to_numpy()).to_parquet(d / "scores.parquet", index=False)
        elif how == "truncated-subsets":
            (d / "subsets.json").write_text((d / "subsets.json").read_text()[:40])
        elif how == "empty-subsets":
            from hprune.subsets import describe_subsets

            scores = pd.read_parquet(d / "scores.parquet").assign(h_score=0)
            scores.to_parquet(d / "scores.parquet", index=False)
            (d / "subsets.json").write_text(json.dumps(describe_subsets(scores, manifest["config"]["runs"])))
            rewritten = {name: file_digest(d / name) for name in ("scores.parquet", "subsets.json")}  # as if hprune wrote them
            (d / "manifest.json").write_text(json.dumps({**manifest, "files": {**manifest["files"], **rewritten}}))
    return make


# (case, files to write into {in}: name -> text, bytes or a maker(path, scored), argv, expected text in the message)
CASES = [
    # --- files that cannot be read
    ("missing file", {}, ["score", "--train", "{in}/nope.jsonl", *SCORE], "{in}/nope.jsonl does not exist"),
    ("missing eval file", {}, ["score", "--train", "{train}", "--eval", "{in}/nope.csv", *SCORE], "nope.csv does not exist"),
    ("empty file", {"e.jsonl": ""}, ["score", "--train", "{in}/e.jsonl", *SCORE], "is empty"),
    ("blank lines only", {"e.jsonl": "\n  \n\n"}, ["score", "--train", "{in}/e.jsonl", *SCORE], "has no rows"),
    ("CSV header only", {"e.csv": "text,label\n"}, ["score", "--train", "{in}/e.csv", *SCORE], "has no rows"),
    ("unknown format .xlsx", {"t.xlsx": b"PK\x03\x04"}, ["score", "--train", "{in}/t.xlsx", *SCORE], "unknown format '.xlsx'"),
    ("no extension", {"train": ROWS}, ["score", "--train", "{in}/train", *SCORE], "unknown format '(no extension)'"),
    ("non-UTF-8 bytes", {"t.jsonl": ROWS.encode() + '{"text": "café", "label": "A"}\n'.encode("latin-1")},
     ["score", "--train", "{in}/t.jsonl", *SCORE], "is not UTF-8 (bad byte at line 3)"),
    ("malformed JSON line", {"t.jsonl": ROWS + '{"text": "x", "label": }\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "t.jsonl line 3: malformed JSON"),
    ("JSON line not an object", {"t.jsonl": ROW + '["x", "HUM"]\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "line 2: expected a JSON object"),
    ("one pretty-printed JSON object", {"t.json": json.dumps({"data": [{"text": "a", "label": "b"}]}, indent=2)},
     ["score", "--train", "{in}/t.json", *SCORE], "holds one JSON object, not one object per line"),
    ("malformed CSV row", {"t.csv": "text,label\nWhat ?,DESC\nWho, me ?,HUM\n"}, ["score", "--train", "{in}/t.csv", *SCORE],
     "t.csv line 3: malformed CSV row (3 fields where the header has 2"),
    ("CSV quote never closed", {"t.csv": 'text,label\nWhat ?,DESC\n"Who ?,HUM\nWhy ?,DESC\n'}, ["score", "--train", "{in}/t.csv", *SCORE],
     "t.csv line 3: malformed CSV row (a quote opened here is never closed)"),
    ("corrupt parquet", {"t.parquet": b"PAR1 not really"}, ["score", "--train", "{in}/t.parquet", *SCORE], "is not a readable parquet file"),
    ("folder not from save_to_disk", {"ds/notes.txt": "hello"}, ["score", "--train", "{in}/ds", *SCORE],
     "is a folder but not one written by datasets.save_to_disk"),
    # --- columns
    ("no text column", {"t.jsonl": '{"body": "a", "label": "A"}\n{"body": "b", "label": "B"}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "no text column found"),
    ("no label column", {"t.jsonl": '{"text": "a", "y": "A"}\n{"text": "b", "y": "B"}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "no label column found"),
    ("--text-column not a column", {}, ["score", "--train", "{train}", "--text-column", "body", *SCORE], "--text-column 'body' is not a column"),
    ("--label-column not a column", {}, ["score", "--train", "{train}", "--label-column", "cls", *SCORE], "--label-column 'cls' is not a column"),
    ("--text-pair-column alone", {}, ["score", "--train", "{train}", "--text-pair-column", "label_fine", *SCORE], "needs --text-column too"),
    # --- values
    ("empty text", {"t.jsonl": ROWS + '{"text": "", "label": "HUM"}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "empty, missing or non-text value in column 'text' at row 2"),
    ("whitespace-only text", {"t.jsonl": '{"text": " \\t ", "label": "HUM"}\n' + ROWS}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "at row 0"),
    ("null text", {"t.jsonl": ROWS + '{"text": null, "label": "HUM"}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE], "at row 2"),
    ("number as text", {"t.jsonl": ROWS + '{"text": 7, "label": "HUM"}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE], "non-text value"),
    ("null label", {"t.jsonl": ROWS + '{"text": "Why ?", "label": null}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE],
     "missing label in column 'label' at row 2"),
    ("empty label", {"t.jsonl": ROWS + '{"text": "Why ?", "label": ""}\n'}, ["score", "--train", "{in}/t.jsonl", *SCORE], "missing label"),
    ("empty label cell in CSV", {"t.csv": "text,label\nWhat ?,DESC\nWho ?,\nWhy ?,HUM\n"}, ["score", "--train", "{in}/t.csv", *SCORE],
     "missing label in column 'label' at row 1"),
    ("a single class", {"t.jsonl": ROW * 3}, ["score", "--train", "{in}/t.jsonl", *SCORE], "has a single class ('DESC')"),
    ("eval label never seen in training", {"e.jsonl": ROW + '{"text": "Why ?", "label": "ZZZ"}\n'},
     ["score", "--train", "{train}", "--eval", "{in}/e.jsonl", *SCORE], "labels never seen in training: 'ZZZ'"),
    # --- numbers
    ("--runs 0", {}, ["score", "--train", "{train}", *SCORE, "--runs", "0"], "argument --runs: must be at least 1, got 0"),
    ("--runs -3", {}, ["score", "--train", "{train}", *SCORE, "--runs", "-3"], "argument --runs: must be at least 1, got -3"),
    ("--runs 2.5", {}, ["score", "--train", "{train}", *SCORE, "--runs", "2.5"], "argument --runs: expected a whole number, got '2.5'"),
    ("--runs 1", {}, ["score", "--train", "{train}", *SCORE, "--runs", "1"], "--runs 1 leaves no example between H = 0 and H = R"),
    ("--epochs 0", {}, ["score", "--train", "{train}", *SCORE, "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    ("--epochs three", {}, ["score", "--train", "{train}", *SCORE, "--epochs", "three"], "argument --epochs: expected a whole number"),
    ("--batch-size -1", {}, ["score", "--train", "{train}", *SCORE, "--batch-size", "-1"], "argument --batch-size: must be at least 1"),
    ("--seed -1", {}, ["score", "--train", "{train}", *SCORE, "--seed", "-1"], "argument --seed: must be at least 0, got -1"),
    ("--lr 0", {}, ["score", "--train", "{train}", *SCORE, "--lr", "0"], "argument --lr: must be above 0, got 0"),
    ("--lr nan", {}, ["score", "--train", "{train}", *SCORE, "--lr", "nan"], "argument --lr: must be above 0, got nan"),
    ("--warmup-ratio 1.5", {}, ["score", "--train", "{train}", *SCORE, "--warmup-ratio", "1.5"],
     "argument --warmup-ratio: must be at least 0 and at most 1, got 1.5"),
    ("--max-length beyond the model", {}, ["score", "--train", "{train}", *SCORE, "--max-length", "1000"],
     "--max-length 1000 is more than model"),
    # --- models
    ("model folder without config.json", {"m/weights.bin": b""}, ["score", "--train", "{train}", *SCORE, "--model", "{in}/m"],
     "is not a model folder (no config.json)"),
    ("model path is a file", {"m.bin": b"\0"}, ["score", "--train", "{train}", *SCORE, "--model", "{in}/m.bin"], "is a file, not a model folder"),
    ("model folder without weights", {"m/config.json": '{"model_type": "bert"}'}, ["score", "--train", "{train}", *SCORE, "--model", "{in}/m"],
     "has no weights (model.safetensors or pytorch_model.bin)"),
    ("model config not JSON", {"m/config.json": "{oops", "m/model.safetensors": b""},
     ["score", "--train", "{train}", *SCORE, "--model", "{in}/m"], "could not load model"),
    ("model folder does not exist", {}, ["score", "--train", "{train}", *SCORE, "--model", "./no-such-model"],
     "model folder ./no-such-model does not exist"),
    # --- output folders
    ("--out under a regular file", {"f": "x"}, ["score", "--train", "{train}", *SCORE, "--out", "{in}/f/scores"],
     "is not writable ({in}/f is a file)"),
    ("--out is a file", {"f": "x"}, ["score", "--train", "{train}", *SCORE, "--out", "{in}/f"], "is a file, not a folder"),
    ("--out holds another scoring", {}, ["score", "--train", "{train}", *SCORE, "--epochs", "2", "--out", "{scored}"],
     "holds a scoring with different epochs (1, now 2)"),
    # --- export
    ("export: no such subset", {}, ["export", "{scored}", "--subset", "nope", "--out", "{out}/s.jsonl"], "no subset named 'nope'; choose one of"),
    ("export: scoring did not finish", {"run": _spoilt_scoring("running")}, ["export", "{in}/run", "--out", "{out}/s.jsonl"],
     "did not finish; run the same `hprune score` command again"),
    ("export: no scores.parquet", {"run": _spoilt_scoring("no-scores")}, ["export", "{in}/run", "--out", "{out}/s.jsonl"],
     "did not finish"),
    ("export: torn manifest", {"run": _spoilt_scoring("torn-manifest")}, ["export", "{in}/run", "--out", "{out}/s.jsonl"],
     "manifest.json is not valid JSON"),
    ("export: not a scoring folder", {"run/x.txt": "x"}, ["export", "{in}/run", "--out", "{out}/s.jsonl"], "is not an hprune scoring folder"),
    ("export: reordered data", {"r.jsonl": _reordered}, ["export", "{scored}", "--train", "{in}/r.jsonl", "--out", "{out}/s.jsonl"],
     "is not the data that was scored (fingerprint"),
    ("export: other row count, mismatch allowed", {"r.jsonl": ROWS},
     ["export", "{scored}", "--train", "{in}/r.jsonl", "--out", "{out}/s.jsonl", "--allow-fingerprint-mismatch"],
     "has 2 rows (fingerprint"),
    ("export: unknown output format", {}, ["export", "{scored}", "--out", "{out}/s.xlsx"], "unknown output format '.xlsx'"),
    ("export: --out under a regular file", {"f": "x"}, ["export", "{scored}", "--out", "{in}/f/s.jsonl"], "could not write {in}/f/s.jsonl ({in}/f is a file)"),
    ("export: --out is a folder", {"d.jsonl/x": "x"}, ["export", "{scored}", "--out", "{in}/d.jsonl"], "is a folder; give a file name"),
    ("export: --out is the training file", {}, ["export", "{scored}", "--out", "{train}"], "is the training file itself"),
    ("export: --out folder exists", {"d/x": "x"}, ["export", "{scored}", "--out", "{in}/d"], "exists; give a new folder"),
    # --- budgets (--fraction, --size): 40 scored rows
    ("export: --fraction above 1", {}, ["export", "{scored}", "--fraction", "1.5", "--out", "{out}/s.jsonl"],
     "--fraction 1.5 is outside (0, 1]; give the share of the rows to keep"),
    ("export: --fraction 0", {}, ["export", "{scored}", "--fraction", "0", "--out", "{out}/s.jsonl"], "--fraction 0 is outside (0, 1]"),
    ("export: --fraction negative", {}, ["export", "{scored}", "--fraction", "-0.2", "--out", "{out}/s.jsonl"], "--fraction -0.2 is outside (0, 1]"),
    ("export: --fraction too small to keep a row", {}, ["export", "{scored}", "--fraction", "0.01", "--out", "{out}/s.jsonl"],
     "--fraction 0.01 of 40 rows keeps no row"),
    ("export: --size larger than the data", {}, ["export", "{scored}", "--size", "41", "--out", "{out}/s.jsonl"],
     "--size 41 is not between 1 and the 40 scored rows; give a size up to 40"),
    ("export: --size 0", {}, ["export", "{scored}", "--size", "0", "--out", "{out}/s.jsonl"], "argument --size: must be at least 1, got 0"),
    ("export: --subset and --fraction", {}, ["export", "{scored}", "--subset", "winning-ticket", "--fraction", "0.3", "--out", "{out}/s.jsonl"],
     "subset winning-ticket and --fraction 0.3 both choose the rows; give the subset or the budget, not both"),
    ("export: --subset and --size", {}, ["export", "{scored}", "--subset", "0", "--size", "5", "--out", "{out}/s.jsonl"],
     "subset 0 and --size 5 both choose the rows"),
    ("export: --fraction and --size", {}, ["export", "{scored}", "--fraction", "0.5", "--size", "5", "--out", "{out}/s.jsonl"],
     "--fraction 0.5 and --size 5 both set the budget; give one of them"),
    ("export: --method without a budget", {}, ["export", "{scored}", "--method", "ccs", "--out", "{out}/s.jsonl"],
     "--method ccs fills a budget; give --fraction or --size with it"),
    ("export: unknown --method", {}, ["export", "{scored}", "--fraction", "0.5", "--method", "nope", "--out", "{out}/s.jsonl"],
     "unknown method 'nope'; choose one of: random"),
    ("train: --subset DIR:NAME and --fraction", {},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{scored}:winning-ticket", "--fraction", "0.5", "--out", "{out}"],
     "subset winning-ticket and --fraction 0.5 both choose the rows"),
    ("train: --size larger than the data", {},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{scored}", "--size", "41", "--out", "{out}"], "--size 41 is not between 1"),
    ("train: --fraction above 1", {},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{scored}", "--fraction", "2", "--out", "{out}"], "--fraction 2 is outside (0, 1]"),
    ("train: --fraction without a scoring", {}, ["train", "--train", "{train}", "--eval", "{eval}", "--fraction", "0.5", "--out", "{out}"],
     "give its folder too: --subset DIR"),
    ("compare: a fraction above 1", {}, ["compare", "{scored}", "--eval", "{eval}", "--fractions", "0.3,1.5", "--out", "{out}"],
     "argument --fractions: 1.5 is not in (0, 1]"),
    ("compare: fractions not numbers", {}, ["compare", "{scored}", "--eval", "{eval}", "--fractions", "0.3,half", "--out", "{out}"],
     "argument --fractions: expected comma-separated numbers"),
    ("subsets: scoring did not finish", {"run": _spoilt_scoring("running")}, ["subsets", "{in}/run"], "did not finish"),
    # --- files changed or cut short since hprune wrote them (the manifest's checksums)
    ("subsets: changed scores.parquet", {"run": _spoilt_scoring("changed-scores")}, ["subsets", "{in}/run"],
     "{in}/run/scores.parquet was changed since hprune wrote it (its sha256 differs from the recorded one); delete it and run the "
     "same `hprune score` command to write it again from the recorded runs"),
    ("export: truncated subsets.json", {"run": _spoilt_scoring("truncated-subsets")}, ["export", "{in}/run", "--out", "{out}/s.jsonl"],
     "{in}/run/subsets.json is truncated or changed (40 of"),
    ("train --subset: changed scores.parquet", {"run": _spoilt_scoring("changed-scores")},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{in}/run:winning-ticket", "--out", "{out}"],
     "{in}/run/scores.parquet was changed since hprune wrote it"),
    ("compare: changed scores.parquet", {"run": _spoilt_scoring("changed-scores")},
     ["compare", "{in}/run", "--eval", "{eval}", "--out", "{out}"], "{in}/run/scores.parquet was changed since hprune wrote it"),
    ("score: changed scores.parquet of a finished scoring", {"run": _spoilt_scoring("changed-scores")},
     ["score", "--train", "{train}", *SCORE, "--batch-size", "8", "--out", "{in}/run"], "{in}/run/scores.parquet was changed"),
    ("score: torn manifest", {"run": _spoilt_scoring("torn-manifest")},
     ["score", "--train", "{train}", *SCORE, "--batch-size", "8", "--out", "{in}/run"], "{in}/run/manifest.json is not valid JSON"),
    ("verify: not a scoring folder", {"run/x.txt": "x"}, ["verify", "{in}/run"], "is not an hprune scoring folder"),
    ("verify: scoring did not finish", {"run": _spoilt_scoring("running")}, ["verify", "{in}/run"], "did not finish"),
    ("verify: torn compare.json", {"cmp/compare.json": "{oops"}, ["verify", "{in}/cmp"], "{in}/cmp/compare.json is not valid JSON"),
    # --- train
    ("train --subset: no such name", {}, ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{scored}:nope", *SCORE[:2], "--out", "{out}"],
     "no subset named 'nope'"),
    ("train --subset: no colon", {}, ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "winning-ticket", "--out", "{out}"],
     "must be DIR:NAME"),
    ("train --subset: no name", {}, ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{scored}:", "--out", "{out}"],
     "must be DIR:NAME"),
    ("train --subset: no such folder", {}, ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{in}/nope:winning-ticket",
                                           "--out", "{out}"], "is not an hprune scoring folder"),
    ("train --subset: unfinished scoring", {"run": _spoilt_scoring("running")},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{in}/run:winning-ticket", "--out", "{out}"], "did not finish"),
    ("train --subset: reordered data", {"r.jsonl": _reordered},
     ["train", "--train", "{in}/r.jsonl", "--eval", "{eval}", "--subset", "{scored}:winning-ticket", "--out", "{out}"],
     "is not the data that was scored (fingerprint"),
    ("train --subset: empty subset", {"run": _spoilt_scoring("empty-subsets")},
     ["train", "--train", "{train}", "--eval", "{eval}", "--subset", "{in}/run:winning-ticket", "--out", "{out}"],
     "subset winning-ticket of {in}/run is empty"),
    ("train: eval label never seen", {"e.jsonl": '{"text": "Why ?", "label": "ZZZ"}\n'},
     ["train", "--train", "{train}", "--eval", "{in}/e.jsonl", "--out", "{out}"], "labels never seen in training"),
    ("train: model path is a file", {"m.bin": b"\0"}, ["train", "--train", "{train}", "--eval", "{eval}", "--model", "{in}/m.bin", "--out", "{out}"],
     "is a file, not a model folder"),
    ("train: --out under a regular file", {"f": "x"}, ["train", "--train", "{train}", "--eval", "{eval}", *SCORE[:2], "--out", "{in}/f/o"],
     "is not writable ({in}/f is a file)"),
]


def _tree(*folders: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size if p.is_file() else -1 for f in folders if f.exists() for p in [f, *f.rglob("*")]}


def _run(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse
        return e.code


@pytest.mark.parametrize("case,files,argv,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, files, argv, expected, tmp_path, scored, tiny_bert, capfd):
    inp = tmp_path / "in"
    inp.mkdir()
    for name, content in files.items():
        path = inp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path, scored)
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    subst = {"in": str(inp), "out": str(tmp_path / "out"), "model": tiny_bert, "scored": str(scored / "scores"),
             "train": str(scored / "train.jsonl"), "eval": str(scored / "eval.jsonl")}
    argv = [a.format(**subst) for a in argv]
    before = _tree(tmp_path, scored)
    capfd.readouterr()
    rc = _run(argv)
    err = capfd.readouterr().err
    assert rc == 2, err
    assert "Traceback" not in err
    lines = err.strip("\n").split("\n")
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.format(**subst) in lines[0]
    assert _tree(tmp_path, scored) == before  # nothing new, nothing half-written


def test_bad_input_through_the_real_command(tmp_path):
    """The same contract from a shell: exit status 2, one line, no traceback, no output folder."""
    bad = tmp_path / "t.jsonl"
    bad.write_text(ROWS + "{oops\n")
    proc = subprocess.run([sys.executable, "-m", "hprune", "score", "--train", str(bad), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: {bad} line 3: malformed JSON (Expecting property name enclosed in double quotes); fix or remove that line\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes through chmod 0o500")
def test_unwritable_out_folder(tmp_path, scored, tiny_bert, capfd):
    parent = tmp_path / "locked"
    parent.mkdir(mode=0o500)
    try:
        rc = _run(["score", "--train", str(scored / "train.jsonl"), *[a.format(model=tiny_bert, out=parent / "o") for a in SCORE]])
        err = capfd.readouterr().err
        assert rc == 2 and err.startswith(f"error: output folder {parent / 'o'} is not writable (Permission denied)") and err.count("\n") == 1
        assert not list(parent.iterdir())
    finally:
        parent.chmod(0o700)


@pytest.mark.parametrize("command", ["export", "train"])
def test_fingerprint_mismatch_can_be_allowed(command, tmp_path, scored, tiny_bert, capfd):
    """--allow-fingerprint-mismatch applies the scores to a reordered file, with a warning naming both fingerprints."""
    from hprune.data import load_data

    reordered = tmp_path / "r.jsonl"
    _reordered(reordered, scored)
    if command == "export":
        argv = ["export", str(scored / "scores"), "--train", str(reordered), "--out", str(tmp_path / "s.jsonl")]
    else:
        argv = ["train", "--train", str(reordered), "--eval", str(scored / "eval.jsonl"), "--subset", f"{scored / 'scores'}:winning-ticket",
                "--model", tiny_bert, "--epochs", "1", "--out", str(tmp_path / "o"), "--quiet"]
    assert _run(argv) == 2
    capfd.readouterr()
    assert _run(argv + ["--allow-fingerprint-mismatch"]) == 0
    err = capfd.readouterr().err
    theirs, ours = load_data(str(scored / "train.jsonl")).fingerprint, load_data(str(reordered)).fingerprint
    assert err.startswith(f"warning: {reordered} (fingerprint {ours}) is not the data that was scored (fingerprint {theirs})")
