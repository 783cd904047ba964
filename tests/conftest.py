import numpy as np
import pytest

from training import data


@pytest.fixture(scope="session")
def real_videos() -> dict[int, np.ndarray]:
    """30 real videos per ball count, seed 10, as Table 1 measures them: float32 (30, 30, 30, 30)."""
    return {n: data.to_signed(data.generate(30, n, length=30, res=30, seed=10)) for n in (1, 3)}


@pytest.fixture(scope="session")
def real_windows() -> dict[int, np.ndarray]:
    """300 random 30-frame windows of 128-frame sequences per ball count (seed 11)."""
    rng = np.random.default_rng(0)
    return {n: data.sample_windows(data.generate(300, n, seed=11), rng, 300) for n in (1, 3)}
