import os
from pathlib import Path

import numpy as np
import pytest

from balls.pixels import to_signed
from balls.sequences import generate
from training import data

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def real_videos() -> dict[int, np.ndarray]:
    """30 real videos per ball count, seed 10, as Table 1 measures them: float32 (30, 30, 30, 30)."""
    return {n: to_signed(generate(30, n, length=30, res=30, seed=10)) for n in (1, 3)}


@pytest.fixture(scope="session")
def real_windows() -> dict[int, np.ndarray]:
    """300 random 30-frame windows of 128-frame sequences per ball count (seed 11)."""
    rng = np.random.default_rng(0)
    return {n: data.sample_windows(generate(300, n, seed=11), rng, 300) for n in (1, 3)}


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory) -> dict[str, Path]:
    """Smoke-preset checkpoints: a 3-ball G_F with a G_V over it, and a 1-ball G_F."""
    from training.run import main

    root = tmp_path_factory.mktemp("runs")
    common = ["--preset", "smoke", "--no-progress", "--steps", "2", "--data", "stream"]
    main([*common, "--stage", "all", "--out", str(root / "b3")])
    main([*common, "--stage", "frames", "--balls", "1", "--out", str(root / "b1")])
    return {
        "frames": root / "b3" / "frames" / "latest.pt",
        "video": root / "b3" / "video" / "latest.pt",
        "frames1": root / "b1" / "frames" / "latest.pt",
    }


@pytest.fixture(scope="session")
def smoke_models(smoke_runs, tmp_path_factory) -> Path:
    """A models folder exported from the smoke runs: variants '3balls' (default) and '1ball-swap'."""
    from export.onnx_export import export_variant

    out = tmp_path_factory.mktemp("models")
    export_variant(smoke_runs["frames"], smoke_runs["video"], "3balls", out)
    export_variant(smoke_runs["frames"], smoke_runs["video"], "1ball-swap", out, swap_frames=smoke_runs["frames1"])
    return out


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_with(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    return env
