"""The classifier two-sample test (training/c2st.py): real against real holds 0.5, real against
shuffled-frame real is caught by the motion view, and the interval is the exact binomial one."""

import numpy as np
import pytest

from balls.pixels import to_signed
from balls.sequences import generate
from training import c2st

PROTOCOL = c2st.Protocol(train=150, test=150, epochs=6, seed=3)


@pytest.fixture(scope="module")
def real_pair():
    return to_signed(generate(300, 3, length=30, seed=41)), to_signed(generate(300, 3, length=30, seed=42))


def test_real_against_real_holds_one_half(real_pair):
    result = c2st.two_sample_test(*real_pair, PROTOCOL)
    for name in c2st.VIEWS:
        low, high = result[name]["ci95"]
        assert low <= 0.5 <= high, (name, result[name])
        assert result[name]["test_videos"] == 300 and result[name]["train_videos"] == 300


def test_shuffled_frames_are_caught_by_the_motion_view_only(real_pair):
    real, other = real_pair
    rng = np.random.default_rng(0)
    shuffled = np.stack([v[rng.permutation(30)] for v in other])
    motion = c2st.accuracy(real, shuffled, "motion", PROTOCOL)
    frame = c2st.accuracy(real, shuffled, "frame", PROTOCOL)
    assert motion["ci95"][0] > 0.9  # the order of frames gives them away
    assert frame["ci95"][0] <= 0.5 <= frame["ci95"][1]  # single frames are real frames


def test_interval_and_inputs():
    low, high = c2st.interval(50, 100)
    assert low < 0.5 < high and high - low == pytest.approx(0.2, abs=0.02)  # ~ +-1.96 * sqrt(0.25 / 100)
    assert c2st.interval(100, 100)[1] == 1.0
    videos = np.zeros((2, 30, 30, 30), dtype=np.float32)
    assert tuple(c2st.view(videos, "motion").shape) == (2, 1, 29, 30, 30)
    assert tuple(c2st.view(videos, "frame").shape) == (2, 1, 30, 30)
    with pytest.raises(ValueError, match="need 300 videos per class"):
        c2st.accuracy(videos, videos, "video", PROTOCOL)
