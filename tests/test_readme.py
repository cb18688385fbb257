"""README's Python section runs as written, on a tiny model and a slice of TREC (the real one trains for half an
hour); the Python API gives the CLI's scores; `hprune.load(...).select` hands back the type it is given."""
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import trec_files
from hprune.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


@pytest.fixture(scope="module")
def scored(tmp_path_factory, tiny_bert):
    """`hprune score` on 60 TREC rows, as README's first command (with --eval): the folder the README's example
    then reads instead of training."""
    tmp = tmp_path_factory.mktemp("readme")
    train, evalf = trec_files(tmp, 60, 20)
    out = tmp / "runs" / "trec"
    assert main(["score", "--train", str(train), "--eval", str(evalf), "--model", tiny_bert, "--runs", "2", "--epochs", "1",
                 "--threads", "1", "--out", str(out), "--quiet"]) == 0
    return tmp, train, evalf, out


def test_the_readme_python_example_runs_as_written_and_reuses_the_cli_scoring(scored, tiny_bert, monkeypatch, capsys):
    tmp, train, evalf, out = scored
    code = _python_example()
    assert len([line for line in code.splitlines() if line.strip()]) == 5
    code = (code.replace("../shared/data/trec/train.jsonl", str(train)).replace("../shared/data/trec/test.jsonl", str(evalf))
            .replace('model="minilm", runs=6, epochs=3', f'model="{tiny_bert}", runs=2, epochs=1, threads=1, progress=False'))
    assert str(train) in code and tiny_bert in code
    monkeypatch.chdir(tmp)
    before = (out / "dynamics" / "run-0.npz").stat().st_mtime_ns
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out
    assert re.fullmatch(r"kept \d+ of 60 rows; accuracy on the winning ticket \d\.\d{3}\n", printed), printed
    # the Python defaults are the CLI's: fit took the CLI's finished runs (other settings are refused) and trained none
    assert (out / "dynamics" / "run-0.npz").stat().st_mtime_ns == before
    assert (tmp / "runs" / "trec-wt" / "metrics.json").is_file()


def test_load_masks_and_selects_the_type_it_is_given(scored):
    import datasets

    import hprune

    _, train, _, out = scored
    scoring = hprune.load(out)
    keep = scoring.mask("winning-ticket")
    frame = pd.read_json(train, lines=True)
    assert keep.dtype == bool and len(keep) == len(frame) == 60
    picked = scoring.select(frame)
    assert isinstance(picked, pd.DataFrame) and list(picked.index) == list(np.flatnonzero(keep))
    rows = frame.to_dict(orient="records")
    assert scoring.select(rows) == [rows[i] for i in np.flatnonzero(keep)]
    ds = scoring.select(datasets.Dataset.from_pandas(frame))
    assert isinstance(ds, datasets.Dataset) and ds["text"] == list(frame["text"][keep])
    assert scoring.select(str(train)).equals(frame[keep])
    with pytest.raises(hprune.HpruneError, match="not the data that was scored"):
        scoring.select(frame.iloc[::-1])


def test_fit_takes_rows_in_memory_with_the_fingerprint_of_the_file(scored, tiny_bert, tmp_path):
    import hprune

    _, train, evalf, out = scored
    frame = pd.read_json(train, lines=True)
    scorer = hprune.HScorer(model=tiny_bert, runs=2, epochs=1, threads=1, progress=False, out_dir=tmp_path / "df").fit(frame, evalf)
    assert scorer.manifest_["fingerprint"] == hprune.load(out).manifest["fingerprint"]
    pd.testing.assert_frame_equal(scorer.scores_, hprune.load(out).scores)  # the same scores as the CLI's, value for value
    assert scorer.get_support("winning-ticket").tolist() == hprune.load(out).mask("winning-ticket").tolist()


def test_fit_and_finetune_give_the_callers_torch_settings_back(scored, tiny_bert):
    """hprune flushes subnormals and sets torch's threads for its fits; in a user's process both end with the fit."""
    import torch

    import hprune
    from hprune.engine.loop import flushes_denormals

    _, train, evalf, _ = scored
    torch.set_flush_denormal(False)
    torch.set_num_threads(2)
    hprune.HScorer(model=tiny_bert, runs=2, epochs=1, threads=1, progress=False).fit(str(train), str(evalf))
    assert not flushes_denormals() and torch.get_num_threads() == 2
    metrics = hprune.finetune(str(train), str(evalf), model=tiny_bert, rows=np.arange(30), epochs=1, threads=1, progress=False)
    assert metrics["train_size"] == 30 and not flushes_denormals() and torch.get_num_threads() == 2
