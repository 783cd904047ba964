"""Training in several processes: `torchrun --nproc_per_node N -m training.run ...`.

torchrun starts N copies of the command with RANK, WORLD_SIZE and LOCAL_RANK set; ``start`` joins
them into one process group (NCCL on GPUs, gloo on CPUs) and returns this process's ``World``. Each
step's global batch (the config's ``batch``) is drawn as in one process, and each rank trains on
its own slice of it (``World.shard``): real data, z, instance noise and Jacobian-clamping steps
alike. The generator and the discriminators are wrapped in DistributedDataParallel, which averages
their gradients, so a step is the one-process step wherever the math is per sample. It is not
where a statistic spans the batch: batch norm (G_F, G_V's encoder), the minibatch-stddev feature
and the mode-seeking pairs see a rank's slice only. Rank 0 alone writes stats, samples and
checkpoints; every rank resumes from the same checkpoint.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's slice (along dim 0) of a global batch."""
        if self.size == 1:
            return x
        if x.shape[0] % self.size:
            raise ValueError(f"a batch of {x.shape[0]} does not split over {self.size} processes")
        n = x.shape[0] // self.size
        return x[self.rank * n : (self.rank + 1) * n]

    def mean(self, row: dict[str, float]) -> dict[str, float]:
        """The mean over ranks of each value (every rank must call it at the same step)."""
        if self.size == 1 or not row:
            return row
        keys = sorted(row)
        t = torch.tensor([float(row[k]) for k in keys], dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.cuda()
        dist.all_reduce(t)
        return {k: float(v) / self.size for k, v in zip(keys, t.tolist(), strict=True)}

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


ONE = World()  # a run in one process


def launched() -> bool:
    """Started by torchrun (or another launcher that sets WORLD_SIZE) with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(device: torch.device) -> tuple[World, torch.device]:
    """Join the launcher's process group; on CUDA each process takes the GPU of its LOCAL_RANK."""
    if not launched():
        return ONE, device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size()), device


def stop(finished: bool) -> None:
    """Leave the process group. Call it after dropping the training objects: a DistributedDataParallel
    wrapper holds the group, and one freed only at interpreter exit (objects in reference cycles
    are) would tear gloo's threads down while the interpreter is going away. ``finished``: every
    rank got here without an error, so they first wait for each other (no rank closes its
    connections while another still talks); after an error no rank waits for the others."""
    if dist.is_initialized():
        gc.collect()
        if finished:
            dist.barrier()
        dist.destroy_process_group()
