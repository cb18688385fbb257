"""Tokenized data as flat arrays (hprune.data.encoded): batches equal tokenizer.pad's, and the cache is found
again for the same data, tokenizer and max length, missed when any of them changes, and rebuilt when broken."""
import logging
import pickle

import numpy as np
import pandas as pd
import pytest
from transformers import AutoTokenizer

from conftest import head_rows
from hprune.data import cached_tokenize, load_data, read_table, tokenize
from hprune.data import encoded
from hprune.data.tables import _parse_json
from hprune.errors import HpruneError
from hprune.tasks import get_task


@pytest.fixture(scope="module")
def tokenizer(tiny_bert):
    return AutoTokenizer.from_pretrained(tiny_bert)


@pytest.fixture
def rte(tmp_path):
    return load_data(str(head_rows("rte", "train", 50, tmp_path / "rte.jsonl")))


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("pairs", [False, True])
def test_batches_equal_tokenizer_pad(tokenizer, rte, side, pairs):
    tokenizer.padding_side = side
    second = rte.pairs if pairs else None
    arrays = tokenize(tokenizer, rte.texts, second, 64)
    enc = tokenizer(rte.texts, second, truncation=True, max_length=64)
    idx = np.array([7, 0, 31, 12])
    want = tokenizer.pad([{k: enc[k][i] for k in enc} for i in idx], return_tensors="pt")
    got = get_task(None).collate(tokenizer, arrays, idx, "cpu")
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and (got[k] == want[k]).all()
    assert arrays.input_ids.dtype == np.uint16  # a 30,522-token vocabulary
    assert arrays.nbytes <= 8 * len(arrays.input_ids) + 64 * len(arrays)
    tokenizer.padding_side = "right"


def _counting(tokenizer, monkeypatch) -> list:
    calls = []
    real = encoded.tokenize
    monkeypatch.setattr(encoded, "tokenize", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    return calls


def test_cache_hit_and_misses(tmp_path, tokenizer, rte, monkeypatch):
    calls = _counting(tokenizer, monkeypatch)
    build = lambda tok=tokenizer, texts=rte.texts, fp=rte.fingerprint, max_length=64: cached_tokenize(
        tok, texts, rte.pairs, max_length, data_fingerprint=fp, cache_dir=tmp_path)
    first = build()
    tokenizer(rte.texts[:2], truncation=True, max_length=16)  # a call leaves its truncation set on the fast tokenizer
    again = build()
    assert len(calls) == 1 and again.folder == first.folder
    np.testing.assert_array_equal(again.input_ids, tokenize(tokenizer, rte.texts, rte.pairs, 64).input_ids)
    assert isinstance(again.input_ids, np.memmap)
    build(max_length=32)
    assert len(calls) == 2
    build(fp="another-data")
    assert len(calls) == 3
    changed = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    changed.add_tokens(["hprunetoken"])
    build(tok=changed)
    assert len(calls) == 4
    assert len(list(tmp_path.glob("*/meta.json"))) == 4


@pytest.mark.parametrize("damage", ["truncate", "remove", "garbage meta"])
def test_a_broken_cache_is_rebuilt_with_a_notice(tmp_path, tokenizer, rte, monkeypatch, caplog, damage):
    build = lambda: cached_tokenize(tokenizer, rte.texts, rte.pairs, 64, data_fingerprint=rte.fingerprint, cache_dir=tmp_path)
    folder = build().folder
    if damage == "truncate":
        path = folder / "offsets.npy"
        path.write_bytes(path.read_bytes()[:-16])
    elif damage == "remove":
        (folder / "input_ids.npy").unlink()
    else:
        (folder / "meta.json").write_text("{")
    calls = _counting(tokenizer, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="hprune"):
        arrays = build()
    assert len(calls) == 1
    notices = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notices) == 1 and "\n" not in notices[0] and "tokenizing again" in notices[0]
    np.testing.assert_array_equal(arrays.input_ids, tokenize(tokenizer, rte.texts, rte.pairs, 64).input_ids)


def test_cached_arrays_pickle_as_their_folder(tmp_path, tokenizer, rte):
    arrays = cached_tokenize(tokenizer, rte.texts, rte.pairs, 64, data_fingerprint=rte.fingerprint, cache_dir=tmp_path)
    assert len(pickle.dumps(arrays)) < 1000  # the path, not the tokens
    back = pickle.loads(pickle.dumps(arrays))
    np.testing.assert_array_equal(back.token_type_ids, arrays.token_type_ids)
    by_value = pickle.loads(pickle.dumps(arrays.in_memory()))
    assert by_value.folder is None and not isinstance(by_value.input_ids, np.memmap)
    np.testing.assert_array_equal(by_value.offsets, arrays.offsets)


def test_scoring_fills_the_cache_and_a_repeat_finds_it(tmp_path, tiny_bert, monkeypatch):
    from hprune import HScorer

    monkeypatch.setenv("HPRUNE_CACHE_DIR", str(tmp_path / "cache"))
    train = head_rows("trec", "train", 40, tmp_path / "train.jsonl")
    options = dict(model=tiny_bert, runs=2, epochs=1, batch_size=8, threads=1, progress=False)
    first = HScorer(**options).fit(str(train))
    assert len(list((tmp_path / "cache" / "tokenized").glob("*/meta.json"))) == 1
    monkeypatch.setattr(encoded, "tokenize", lambda *a, **kw: pytest.fail("tokenized again"))
    second = HScorer(**options).fit(str(train))
    pd.testing.assert_frame_equal(first.scores_, second.scores_)


def test_json_lines_read_by_columns_equal_the_line_parser(tmp_path):
    path = head_rows("sst2", "train", 300, tmp_path / "sst2.jsonl")
    path.write_text(path.read_text() + "\n  \n", encoding="utf-8")  # blank lines are not rows
    frame, records = read_table(str(path))
    assert type(records).__name__ == "JsonLines"
    want = _parse_json(path.read_text(encoding="utf-8"), str(path))
    pd.testing.assert_frame_equal(frame, pd.DataFrame.from_records(want))
    assert [records[i] for i in range(len(records))] == want
    _, records = read_table(str(path))
    path.write_text("{}\n", encoding="utf-8")
    with pytest.raises(HpruneError, match="changed since it was read"):
        records[0]


def test_a_ray_cluster_gets_the_arrays_by_value_once(tmp_path, tokenizer, rte):
    from hprune.config import ScoreConfig
    from hprune.phase1.executors import _by_value
    from hprune.phase1.run import RunInputs

    arrays = cached_tokenize(tokenizer, rte.texts, rte.pairs, 64, data_fingerprint=rte.fingerprint, cache_dir=tmp_path)
    inputs = RunInputs(config=ScoreConfig(), label_names=rte.label_names, labels=rte.labels, features=arrays, eval_features=arrays)
    shipped = _by_value(inputs)
    assert shipped.features.folder is None and shipped.eval_features.folder is None and not shipped.progress
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(shipped)).features.input_ids, arrays.input_ids)
