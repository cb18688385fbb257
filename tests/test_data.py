"""Properties of load_data that scores depend on: the fingerprint sees any reorder, change or format
round trip exactly as it should, and the label map is stable."""
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from hprune.data import load_data, write_rows
from hprune.errors import HpruneError

# Any printable text, line and paragraph separators included (legal inside a JSON line), not only blanks.
TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(lambda t: t.strip())
LABEL = st.one_of(st.sampled_from(["neg", "pos", "neutral", "10"]), st.integers(-3, 12))
ROWS = st.lists(st.tuples(TEXT, LABEL), min_size=2, max_size=25, unique_by=lambda r: (r[0], str(r[1])))
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _write(rows, folder: Path, name: str = "d.jsonl") -> str:
    path = folder / name
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t, "label": y}, ensure_ascii=False) + "\n" for t, y in rows), encoding="utf-8")
    else:
        pd.DataFrame({"text": [t for t, _ in rows], "label": [str(y) for _, y in rows]}).to_csv(path, index=False)
    return str(path)


def _two_classes(rows) -> bool:
    return len({str(y) for _, y in rows}) >= 2


@PROPERTY
@given(ROWS, st.randoms(use_true_random=False))
def test_fingerprint_sees_any_reorder_of_distinct_rows(rows, rnd):
    assume(_two_classes(rows))
    perm = list(range(len(rows)))
    rnd.shuffle(perm)
    with tempfile.TemporaryDirectory() as d:
        a = load_data(_write(rows, Path(d), "a.jsonl"))
        again = load_data(_write(rows, Path(d), "again.jsonl"))
        b = load_data(_write([rows[i] for i in perm], Path(d), "b.jsonl"))
    assert a.fingerprint == again.fingerprint
    assert (a.fingerprint == b.fingerprint) == (perm == sorted(perm))
    # The label map depends on the set of labels, never on their order in the file.
    assert a.label_names == b.label_names
    np.testing.assert_array_equal(a.labels[perm], b.labels)


@PROPERTY
@given(ROWS, st.integers(0, 24), TEXT)
def test_fingerprint_sees_a_changed_text(rows, k, text):
    assume(_two_classes(rows))
    k %= len(rows)
    assume(text != rows[k][0])
    changed = [*rows[:k], (text, rows[k][1]), *rows[k + 1:]]
    with tempfile.TemporaryDirectory() as d:
        assert load_data(_write(rows, Path(d), "a.jsonl")).fingerprint != load_data(_write(changed, Path(d), "b.jsonl")).fingerprint


@PROPERTY
@given(ROWS, st.data())
def test_label_map_is_stable_and_round_trips(rows, data):
    assume(_two_classes(rows))
    with tempfile.TemporaryDirectory() as d:
        train = load_data(_write(rows, Path(d)))
        raw = [str(y) for _, y in rows]
        assert [train.label_names[k] for k in train.labels] == raw
        if all(isinstance(y, int) for _, y in rows):  # integer labels in numeric order
            assert train.label_names == sorted(set(raw), key=int)
        # Another file read with the training label map keeps every label's id.
        some = data.draw(st.lists(st.sampled_from(rows), min_size=1, max_size=10))
        other = load_data(_write(some, Path(d), "other.jsonl"), label_names=train.label_names)
        assert [other.label_names[k] for k in other.labels] == [str(y) for _, y in some]
        assert other.label_names == train.label_names


@PROPERTY
@given(ROWS, st.data(), st.sampled_from([".jsonl", ".csv", ".parquet"]))
def test_exported_rows_reload_with_the_same_content(rows, data, suffix):
    """An export of some rows, read back, is exactly those rows: the same fingerprint as the same rows
    written directly (the format does not enter the fingerprint)."""
    assume(_two_classes(rows))
    with tempfile.TemporaryDirectory() as d:
        full = load_data(_write(rows, Path(d)))
        ids = sorted(data.draw(st.sets(st.integers(0, len(rows) - 1), min_size=1)))
        assume(len({str(rows[i][1]) for i in ids}) >= 2)
        if suffix == ".parquet" and len({type(rows[i][1]) for i in ids}) > 1:  # parquet columns have one type
            with pytest.raises(HpruneError, match="label mixes value types.*export to .jsonl or .csv"):
                write_rows(full, np.array(ids), Path(d) / f"export{suffix}")
            return
        write_rows(full, np.array(ids), Path(d) / f"export{suffix}")
        back = load_data(str(Path(d) / f"export{suffix}"))
        direct = load_data(_write([rows[i] for i in ids], Path(d), "direct.csv"))
    assert back.texts == [rows[i][0] for i in ids]
    assert back.fingerprint == direct.fingerprint
