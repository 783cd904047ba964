"""PyTorch views of the bouncing-balls data: random frames (stage 1) and random windows (stage 2).

An epoch is one pass over the sequences, each giving one random frame (``FrameDataset``) or one
random ``length``-frame window (``VideoDataset``); the choice within a sequence is a function of
(seed, epoch, index), so runs repeat exactly and DataLoader workers need no shared state. The
arrays stay memory-mapped: the paper-size file (11.5 GB) trains without being loaded whole.
``SimulatedBatches`` simulates each batch on the fly instead of reading a file.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from balls.pixels import to_signed
from training import data as bb


class _SequenceDataset(Dataset):
    def __init__(self, sequences: np.ndarray, seed: int = 0) -> None:
        self.sequences = sequences  # uint8 (N, T, H, W), usually a memory map
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sequences)

    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, index])


class FrameDataset(_SequenceDataset):
    """One random frame per sequence: float32 (1, H, W) in [-1, 1]."""

    def __getitem__(self, index: int) -> torch.Tensor:
        t = self._rng(index).integers(0, self.sequences.shape[1])
        return torch.from_numpy(to_signed(self.sequences[index, t]))[None]


class VideoDataset(_SequenceDataset):
    """One random ``length``-frame window per sequence: float32 (length, H, W) in [-1, 1]."""

    def __init__(self, sequences: np.ndarray, length: int = 30, seed: int = 0) -> None:
        super().__init__(sequences, seed)
        if length > sequences.shape[1]:
            raise ValueError(f"windows of {length} frames asked of sequences of {sequences.shape[1]}")
        self.length = length

    def __getitem__(self, index: int) -> torch.Tensor:
        t = self._rng(index).integers(0, self.sequences.shape[1] - self.length + 1)
        return torch.from_numpy(to_signed(self.sequences[index, t : t + self.length]))


class SimulatedBatches(IterableDataset):
    """Endless batches simulated on the fly (``training.data.stream``); use ``batch_size=None``.

    kind="frames": (batch, 1, H, W); kind="windows": (batch, length, H, W); float32 in [-1, 1].
    """

    def __init__(
        self, kind: str, batch: int, n_balls: int, res: int = 30, length: int = 30, seq_len: int = 128, seed: int = 0
    ) -> None:
        super().__init__()
        self.args = dict(kind=kind, batch=batch, n_balls=n_balls, res=res, length=length, seq_len=seq_len)
        self.seed = seed
        bb.stream(**self.args, seed=seed)  # validates the arguments now rather than in a worker

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = torch.utils.data.get_worker_info()
        seed = self.seed if info is None else self.seed * 1000 + info.id  # distinct stream per worker
        for batch in bb.stream(**self.args, seed=seed):
            x = torch.from_numpy(batch)
            yield x[:, None] if self.args["kind"] == "frames" else x
