"""Recording is keyed by example id: right under per-epoch shuffling, gradient accumulation and a
partial last batch. With lr = 0 and no dropout the model never changes, so what each training step
recorded for an id must equal a separate prediction for that id."""
import numpy as np
import pytest
import torch

from conftest import head_rows
from hprune.data import load_data
from hprune.dynamics.record import DynamicsRecorder
from hprune.dynamics.store import RunDynamics
from hprune.tasks.base import step_statistics
from hprune.engine.models import load_classifier
from hprune.config import TrainConfig
from hprune.engine.loop import epoch_batches, fine_tune, predict, seed_everything
from hprune.data import tokenize
from hprune.subsets import rs2_epochs


def test_epoch_batches_cover_every_example_once_and_reshuffle():
    lengths = np.random.default_rng(0).integers(3, 60, 103)
    seen = []
    for epoch in range(3):
        batches = epoch_batches(lengths, 8, seed=5, epoch=epoch, length_grouped=True)
        flat = np.concatenate(batches)
        assert sorted(flat) == list(range(103))
        assert sorted(len(b) for b in batches)[0] == 103 % 8  # one partial batch, nothing dropped
        seen.append(flat)
    assert not np.array_equal(seen[0], seen[1])
    np.testing.assert_array_equal(np.concatenate(epoch_batches(lengths, 8, seed=5, epoch=1, length_grouped=True)), seen[1])


def test_step_statistics_by_hand():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 3.0, 1.0]])
    stats = step_statistics(logits, torch.tensor([0, 2]))
    assert stats["correct"].tolist() == [True, False]
    assert stats["margins"].tolist() == pytest.approx([2.0, -2.0])
    p = logits.softmax(-1)
    assert stats["probs"].tolist() == pytest.approx([p[0, 0].item(), p[1, 2].item()])
    assert stats["el2n"][1].item() == pytest.approx(float(torch.linalg.norm(p[1] - torch.tensor([0.0, 0, 1]))))


@pytest.mark.parametrize("batch_size,grad_accum,length_grouped", [(8, 3, True), (16, 1, False), (5, 4, True)])
def test_recorded_by_id(tmp_path, tiny_bert, batch_size, grad_accum, length_grouped):
    data = load_data(str(head_rows("trec", "train", 70, tmp_path / "trec.jsonl")))
    seed_everything(0)
    tokenizer, model = load_classifier(tiny_bert, data.label_names)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    features = tokenize(tokenizer, data.texts, None, 64)
    dyn = RunDynamics.empty(3, len(data))
    recorder = DynamicsRecorder(dyn)
    calls = []

    def on_step(epoch, idx, logits, labels):
        calls.append(epoch)
        recorder.record(epoch, idx, logits, labels)

    config = TrainConfig(epochs=3, lr=0.0, batch_size=batch_size, grad_accum=grad_accum, warmup_ratio=0.0, length_grouped=length_grouped)
    fine_tune(model, tokenizer, features, data.labels, config, seed=1, on_step=on_step)
    assert calls.count(0) == -(-70 // batch_size)  # every micro-batch recorded, the partial one too
    for epoch in range(3):
        assert len(recorder.missing(epoch)) == 0
    want = step_statistics(torch.from_numpy(predict(model, tokenizer, features)), torch.from_numpy(data.labels))
    for epoch in range(3):
        np.testing.assert_allclose(dyn.probs[epoch], want["probs"].numpy(), atol=2e-3)
        np.testing.assert_allclose(dyn.margins[epoch], want["margins"].numpy(), atol=1e-2)
        np.testing.assert_array_equal(dyn.correct[epoch].astype(bool), want["correct"].numpy())


def test_epoch_rows_train_each_epoch_on_its_own_rows(tmp_path, tiny_bert):
    """RS2: a new random subset of the same size every epoch, and nothing else trained."""
    data = load_data(str(head_rows("trec", "train", 40, tmp_path / "trec.jsonl")))
    tokenizer, model = load_classifier(tiny_bert, data.label_names)
    features = tokenize(tokenizer, data.texts, None, 64)
    draws = rs2_epochs(len(data), 12, 3, seed=7)
    seen = {e: [] for e in range(3)}
    fit = fine_tune(model, tokenizer, features, data.labels, TrainConfig(epochs=3, lr=0.0, batch_size=5), seed=1, epoch_rows=draws,
                    on_step=lambda epoch, idx, logits, labels: seen[epoch].extend(idx.tolist()))
    assert [sorted(seen[e]) for e in range(3)] == [d.tolist() for d in draws]
    assert len({tuple(d) for d in draws}) == 3 and len(fit["train_loss"]) == 3


def test_recording_an_id_twice_in_an_epoch_raises():
    recorder = DynamicsRecorder(RunDynamics.empty(1, 4))
    recorder.record(0, np.array([0, 1]), torch.zeros(2, 2), torch.tensor([0, 1]))
    with pytest.raises(RuntimeError, match="recorded twice"):
        recorder.record(0, np.array([1, 2]), torch.zeros(2, 2), torch.tensor([0, 1]))


def test_dynamics_file_roundtrip_and_size(tmp_path):
    dyn = RunDynamics.empty(3, 1000)
    dyn.correct[:] = 1
    dyn.epochs_done = 2
    dyn.save(tmp_path / "run.npz")
    back = RunDynamics.load(tmp_path / "run.npz")
    assert back.epochs_done == 2 and back.correct.sum() == 3000
    per_entry = sum(getattr(back, k).itemsize for k in ("correct", "probs", "margins", "el2n"))
    assert per_entry <= 8
