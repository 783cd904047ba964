"""A classifier two-sample test of videos (Lopez-Paz & Oquab, ICLR 2017): how well can a small
network tell generated videos from real ones? An evaluation tool only: no training loss uses it.

Protocol (``two_sample_test``): ``train`` real and ``train`` generated videos train a classifier
(``epochs`` passes of Adam, lr 1e-3, batch 32, torch seeded with ``seed``); ``test`` real and
``test`` generated videos it has never seen give the held-out accuracy, with a 95% Clopper-Pearson
interval. Under the null (both sets from one distribution) the accuracy is 0.5; 1.0 means the two are
told apart every time. Three views of the same videos:

- ``video``: the whole (T, H, W) video, a 3-D convolutional classifier;
- ``motion``: frame differences only, x_{t+1} - x_t (T-1, H, W), the same classifier: the motion;
- ``frame``: one frame of each video (the middle one), a 2-D classifier: the appearance.

Defaults: 500 + 500 videos per class, 10 epochs (README "Evaluation" has the time it takes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binomtest
from torch import nn

VIEWS = ("video", "motion", "frame")


@dataclass(frozen=True)
class Protocol:
    train: int = 500  # videos per class the classifier learns from
    test: int = 500  # videos per class it is scored on
    epochs: int = 10
    batch: int = 32
    lr: float = 1e-3
    seed: int = 0


def view(videos: np.ndarray, name: str) -> torch.Tensor:
    """(B, T, H, W) videos in [-1, 1] -> the classifier's input for a view, with a channel axis."""
    x = torch.from_numpy(np.ascontiguousarray(videos, dtype=np.float32))
    if name == "video":
        return x[:, None]  # (B, 1, T, H, W)
    if name == "motion":
        return (x[:, 1:] - x[:, :-1])[:, None]  # (B, 1, T-1, H, W)
    if name == "frame":
        return x[:, x.shape[1] // 2][:, None]  # (B, 1, H, W)
    raise ValueError(f"view must be one of {VIEWS}, not {name!r}")


def classifier(dims: int) -> nn.Module:
    """Three strided convolutions (16, 32, 64 channels), global average pooling, one logit."""
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    first_stride = (1, 2, 2) if dims == 3 else 2
    return nn.Sequential(
        conv(1, 16, 3, stride=first_stride, padding=1), nn.LeakyReLU(0.2),
        conv(16, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        conv(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1),
    )  # fmt: skip


def interval(correct: int, total: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of an accuracy."""
    ci = binomtest(correct, total).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def accuracy(real: np.ndarray, fake: np.ndarray, name: str, protocol: Protocol = Protocol()) -> dict[str, object]:
    """Held-out accuracy of one view: ``real`` and ``fake`` each hold train + test videos (B, T, H, W)."""
    p = protocol
    n = p.train + p.test
    if len(real) < n or len(fake) < n:
        raise ValueError(
            f"need {n} videos per class ({p.train} train + {p.test} test), got {len(real)} and {len(fake)}"
        )
    x = torch.cat([view(real[:n], name), view(fake[:n], name)])
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    train = torch.cat([torch.arange(p.train), n + torch.arange(p.train)])
    test = torch.cat([torch.arange(p.train, n), n + torch.arange(p.train, n)])
    gen = torch.Generator().manual_seed(p.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(p.seed)
        net = classifier(dims=x.dim() - 2)
    opt = torch.optim.Adam(net.parameters(), lr=p.lr)
    loss_fn = nn.BCEWithLogitsLoss()
    net.train()
    for _ in range(p.epochs):
        order = train[torch.randperm(len(train), generator=gen)]
        for i in range(0, len(order), p.batch):
            idx = order[i : i + p.batch]
            opt.zero_grad(set_to_none=True)
            loss_fn(net(x[idx])[:, 0], y[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        logits = torch.cat([net(x[test[i : i + 256]])[:, 0] for i in range(0, len(test), 256)])
    correct = int(((logits > 0).float() == y[test]).sum())
    low, high = interval(correct, len(test))
    return {"accuracy": correct / len(test), "ci95": [low, high], "test_videos": len(test), "train_videos": len(train)}


def two_sample_test(real: np.ndarray, fake: np.ndarray, protocol: Protocol = Protocol()) -> dict[str, dict]:
    """All three views: {"video": {"accuracy", "ci95", ...}, "motion": ..., "frame": ...}."""
    return {name: accuracy(real, fake, name, protocol) for name in VIEWS}
