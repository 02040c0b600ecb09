import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from pointnet_kit.engine.distributed import DistInfo, ShardedBatchSampler

from .conftest import fast_overrides

REPO = Path(__file__).resolve().parents[2]


def test_shards_of_a_global_batch_are_the_single_process_batch():
    single = ShardedBatchSampler(50, 8, DistInfo(), seed=3, drop_last=True).batches(epoch=2)
    shards = [ShardedBatchSampler(50, 8, DistInfo(rank, 2), seed=3, drop_last=True).batches(epoch=2) for rank in (0, 1)]
    assert len(single) == len(shards[0]) == 6
    for step, batch in enumerate(single):
        assert torch.equal(torch.cat([shards[0][step], shards[1][step]]), batch)
    other_epoch = ShardedBatchSampler(50, 8, DistInfo(), seed=3, drop_last=True).batches(epoch=3)
    assert not torch.equal(torch.cat(other_epoch), torch.cat(single))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_gloo_run_follows_the_single_process_trajectory(tiny_data, tmp_path):
    overrides = fast_overrides(tiny_data, epochs=4) + ["train.augmentations=[]", "model.kwargs.dropout=0.0", "runtime.num_threads=1"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, "-m", "pointnet_kit", "train", "--out", str(tmp_path / "one"), *overrides],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-addr", "127.0.0.1",
         "--master-port", str(_free_port()), "-m", "pointnet_kit", "train", "--out", str(tmp_path / "two"), *overrides],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    one = [json.loads(x) for x in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    two = [json.loads(x) for x in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in two] == [1, 2, 3, 4]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["device"] == "cpu x2"
    # Same global batch and data order; BatchNorm statistics are per process on CPU, so close, not equal.
    for a, b in zip(one, two):
        assert abs(a["train_acc"] - b["train_acc"]) <= 0.15
    assert max(m["val_oa"] for m in two) >= 0.9 and max(m["val_oa"] for m in one) >= 0.9
    assert two[-1]["train_loss"] < two[0]["train_loss"]
    # Only rank 0 writes: one set of files.
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
