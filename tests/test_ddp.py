"""One run on several processes (DDP, gloo on CPU): each rank trains on a disjoint share of every
epoch's batches, padding steps keep the ranks in step and are never recorded, and after the epoch-end
all-gather every rank holds every example exactly once per epoch, at the right id."""
import json
import subprocess

import numpy as np
import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from conftest import classifier_without_dropout, free_port, head_rows, torchrun_score
from hprune.engine.distributed import World, shard_batches
from hprune.engine.loop import epoch_batches

N_ROWS, BATCH, EPOCHS = 52, 8, 2  # 7 batches: rank 0 gets 4, rank 1 gets 3 and one padding step


@pytest.mark.parametrize("n_batches,grad_accum,size", [(7, 1, 2), (7, 2, 2), (10, 3, 3), (1, 1, 2), (9, 4, 1)])
def test_shard_batches_split_pad_and_scale(n_batches, grad_accum, size):
    rng = np.random.default_rng(n_batches)
    batches = np.split(rng.permutation(n_batches * 5 - 2), range(5, n_batches * 5 - 2, 5))
    shards = [shard_batches(batches, grad_accum, World(rank, size)) for rank in range(size)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    real = [idx for s in shards for idx, num, _, _ in s if num]
    assert sorted(np.concatenate(real).tolist()) == sorted(np.concatenate(batches).tolist())  # disjoint, complete
    for s in shards:
        assert [sync for *_, sync in s] == [(j + 1) % grad_accum == 0 or j + 1 == len(s) for j in range(len(s))]
    # Over all ranks, the micro-steps of one optimizer step weigh `size` in all (DDP then averages to 1).
    for start in range(0, len(shards[0]), grad_accum):
        weight = sum(num / den for s in shards for _, num, den, _ in s[start : start + grad_accum])
        assert weight == pytest.approx(size)
    if size == 1:  # the single-process loop's own scaling, to the bit
        for k, (idx, num, den, _) in enumerate(shards[0]):
            group = batches[k - k % grad_accum : k - k % grad_accum + grad_accum]
            assert (num, den) == (len(idx), sum(len(b) for b in group))


def _ddp_worker(rank: int, size: int, port: int, model: str, train: str, out: str) -> None:
    from hprune.data import load_data
    from hprune.dynamics.record import gather_epoch
    from hprune.dynamics.record import DynamicsRecorder
    from hprune.dynamics.store import RunDynamics
    from hprune.config import TrainConfig
    from hprune.engine.loop import fine_tune
    from hprune.data import tokenize

    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    world = World(rank, size)
    data = load_data(train)
    tokenizer, net = classifier_without_dropout(model, data.label_names)
    features = tokenize(tokenizer, data.texts, None, 64)
    recorder = DynamicsRecorder(RunDynamics.empty(EPOCHS, len(data)))
    stepped = {e: [] for e in range(EPOCHS)}

    def on_step(epoch, idx, logits, labels):
        stepped[epoch].append(np.asarray(idx).tolist())
        recorder.record(epoch, idx, logits, labels)

    def on_epoch_end(epoch, state):
        gather_epoch(world, recorder, epoch)

    config = TrainConfig(epochs=EPOCHS, lr=0.0, batch_size=BATCH, warmup_ratio=0.0)
    fine_tune(net, tokenizer, features, data.labels, config, seed=3, on_step=on_step, on_epoch_end=on_epoch_end, world=world)

    # Duplicates as accelerate's sampler pads them: under "first", the earliest presentation wins.
    first = DynamicsRecorder(RunDynamics.empty(1, 4), duplicates="first")
    logits = torch.tensor([[float(rank), 0.0]])
    first.record(0, [rank + 1], logits, torch.tensor([0]))  # rank 0: id 1, rank 1: id 2 (step 0)
    first.record(0, [2 - rank], logits, torch.tensor([0]))  # rank 0: id 2, rank 1: id 1 (step 1): repeats
    gather_epoch(world, first, 0)
    d = recorder.dynamics
    np.savez(f"{out}/rank{rank}.npz", correct=d.correct, probs=d.probs, seen=recorder.seen, dup_margins=first.dynamics.margins,
             stepped=np.array(json.dumps(stepped)))
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_process_ddp_records_each_example_once_per_epoch(tmp_path, tiny_bert):
    from hprune.data import load_data
    from hprune.tasks.base import step_statistics
    from hprune.engine.loop import predict
    from hprune.data import tokenize

    train = head_rows("trec", "train", N_ROWS, tmp_path / "train.jsonl")
    mp.spawn(_ddp_worker, args=(2, free_port(), tiny_bert, str(train), str(tmp_path)), nprocs=2, join=True)
    ranks = [np.load(tmp_path / f"rank{r}.npz") for r in range(2)]
    stepped = [json.loads(str(z["stepped"])) for z in ranks]
    data = load_data(str(train))
    tokenizer, model = classifier_without_dropout(tiny_bert, data.label_names)
    features = tokenize(tokenizer, data.texts, None, 64)
    lengths = features.lengths()
    for epoch in range(EPOCHS):
        recorded = [i for s in stepped for batch in s[str(epoch)] for i in batch]
        assert sorted(recorded) == list(range(N_ROWS))  # each example once, the padding step not at all
        batches = epoch_batches(lengths, BATCH, seed=3, epoch=epoch, length_grouped=True)
        assert [len(s[str(epoch)]) for s in stepped] == [4, 3]
        assert [sorted(b) for b in stepped[1][str(epoch)]] == [sorted(batches[k].tolist()) for k in (1, 3, 5)]
    for z in ranks:  # after the gather, both ranks hold the whole epoch
        assert z["seen"].all()
        np.testing.assert_array_equal(z["probs"], ranks[0]["probs"])
    # lr = 0 and no dropout: what each step recorded for an id is that id's own prediction.
    want = step_statistics(torch.from_numpy(predict(model, tokenizer, features)), torch.from_numpy(data.labels))
    for epoch in range(EPOCHS):
        np.testing.assert_allclose(ranks[0]["probs"][epoch], want["probs"].numpy(), atol=2e-3)
        np.testing.assert_array_equal(ranks[0]["correct"][epoch].astype(bool), want["correct"].numpy())
    # Under duplicates="first": id 1 keeps rank 0's step-0 record (margin 0), id 2 rank 1's step-0 record (margin 1).
    np.testing.assert_array_equal(ranks[0]["dup_margins"][0], [0, 0, 1, 0])


@pytest.mark.slow
def test_torchrun_score_writes_a_complete_scoring(tmp_path, tiny_bert):
    train = head_rows("trec", "train", 60, tmp_path / "train.jsonl")
    out = tmp_path / "ddp"
    cmd, env = torchrun_score(train, tiny_bert, out, runs=2, epochs=2)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("scored 60 examples") == 1  # rank 0 reports, rank 1 stays quiet
    scores = pd.read_parquet(out / "scores.parquet")
    assert scores["example_id"].tolist() == list(range(60))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["processes"] == 2
    for r in range(2):
        assert np.load(out / "dynamics" / f"run-{r}.npz")["epochs_done"] == 2
    assert not list((out / "dynamics").glob("*.ckpt"))
