"""Multi-process training through PyTorch's own launcher (``torchrun``)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group when launched by ``torchrun`` (``WORLD_SIZE > 1``); no-op otherwise.

    NCCL on CUDA, gloo elsewhere.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group(backend=backend)
    return info


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum ``tensor`` over processes (in place); identity for one process."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


class ShardedBatchSampler:
    """A distributed sampler for data held on the device: seeded per-epoch shuffles, sharded batches.

    Every process draws the same permutation (seed + epoch), cuts it into global batches of
    ``batch_size`` and takes its contiguous share of each, so ``K`` processes at global batch ``B``
    see exactly the batches of one process at batch ``B``.
    """

    def __init__(self, num_samples: int, batch_size: int, info: DistInfo, seed: int, drop_last: bool) -> None:
        if batch_size % info.world_size:
            raise ValueError(f"batch size {batch_size} is not divisible by {info.world_size} processes")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.info = info
        self.seed = seed
        self.drop_last = drop_last

    def __len__(self) -> int:
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def batches(self, epoch: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        out = []
        for step in range(len(self)):
            batch = order[step * self.batch_size : (step + 1) * self.batch_size]
            out.append(batch.tensor_split(self.info.world_size)[self.info.rank])
        return out
