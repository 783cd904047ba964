"""The Table 1 metric, ball counts and motion statistics of balls.metrics."""

import subprocess
import sys

import numpy as np
import pytest

from balls import metrics, pixels, sequences
from balls import render as renderer


def render_path(path_xy: np.ndarray) -> np.ndarray:
    """One ball following centres (T, 2) in box units, as a float32 video (T, 30, 30) in [-1, 1]."""
    return pixels.to_signed(renderer.render(np.asarray(path_xy)[None, :, None, :], 30, as_uint8=True))[0]


def test_static_video_scores_zero():
    video = np.repeat(render_path([[5.0, 5.0]]), 30, axis=0)
    assert metrics.consecutive_frame_mse(video) == 0.0


def test_known_shift_gives_the_known_value():
    # a 4x4 square moving one pixel right per frame: 4 pixels leave and 4 enter at every step
    video = -np.ones((20, 30, 30), dtype=np.float32)
    for t in range(20):
        video[t, 10:14, t : t + 4] = 1.0
    assert metrics.consecutive_frame_mse(video) == pytest.approx(8 / 900)
    batch = np.stack([video, video[::-1], np.zeros_like(video)])  # also (B, T, 1, H, W) works
    np.testing.assert_allclose(metrics.consecutive_frame_mse(batch[:, :, None]), [8 / 900, 8 / 900, 0])


def test_binarisation_threshold_is_zero():
    video = np.zeros((2, 3, 3), dtype=np.float32)
    video[1] = 1e-6  # just above 0 is "on"; exactly 0 is "off"
    assert metrics.consecutive_frame_mse(video) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.consecutive_frame_mse(np.zeros((1, 3, 3)))


def test_summary_is_mean_and_population_std():
    s = metrics.summarize([1.0, 3.0])
    assert s == {"mean": 2.0, "std": 1.0, "n": 2, "min": 1.0, "max": 3.0}


def test_counts_are_exact_on_separated_balls_and_merge_touching_ones():
    centres = np.array([[[2.0, 2.0], [8.0, 2.0], [5.0, 8.0]], [[2.0, 2.0], [8.0, 2.0], [2.0, 8.0]]])
    frames = pixels.to_signed(renderer.render(centres, 30, as_uint8=True))
    assert metrics.count_balls(frames).tolist() == [3, 3]
    touching = pixels.to_signed(renderer.render(np.array([[[4.0, 5.0], [6.0, 5.0]]]), 30, as_uint8=True))
    assert metrics.count_balls(touching).tolist() == [1]
    assert metrics.count_balls(-np.ones((2, 4, 30, 30))).shape == (2, 4)
    hist = metrics.count_histogram(np.array([0, 1, 1, 3, 9]))
    assert hist["1"] == 0.4 and hist["6+"] == 0.2 and sum(hist.values()) == pytest.approx(1.0)


def test_ball_centres_are_sub_pixel_accurate():
    frame = render_path([[3.1, 6.7]])[0]
    ((x, y),) = metrics.ball_centres(frame)
    assert x == pytest.approx(3.1 * 3, abs=0.05) and y == pytest.approx(6.7 * 3, abs=0.05)


def test_speed_of_a_ball_moving_in_a_straight_line():
    t = np.arange(30)[:, None]
    video = render_path(np.hstack([2.0 + 0.2 * t, 3.0 + 0.1 * t]))  # 0.224 units = 0.671 px a frame
    stats = metrics.motion_stats(video, n_balls=1)
    assert stats.mean_speed == pytest.approx(np.hypot(0.2, 0.1) * 3, abs=0.02)
    assert stats.direction_changes == 0 and stats.tracked_steps == 28


def test_a_turn_in_open_space_is_unexplained_and_a_wall_bounce_is_not():
    t = np.arange(15)[:, None]
    out = np.hstack([3.0 + 0.25 * t, 5.0 + 0 * t])  # right along the middle ...
    back = np.hstack([out[-1, :1] + 0 * t[1:], 5.0 + 0.25 * t[1:]])  # ... then down, far from walls
    turn = metrics.motion_stats(render_path(np.vstack([out, back])), n_balls=1)
    assert (turn.direction_changes, turn.unexplained_changes) == (1, 1)
    to_wall = np.hstack([5.0 + 0.35 * t, 5.0 + 0 * t])  # reaches x = 8.8 (r from the wall) and back
    bounce_path = np.vstack([to_wall[to_wall[:, 0] <= 8.8], to_wall[to_wall[:, 0] <= 8.8][::-1][1:]])
    bounce = metrics.motion_stats(render_path(bounce_path), n_balls=1)
    assert bounce.direction_changes == 1 and bounce.unexplained_changes == 0


@pytest.mark.parametrize("n_balls", [1, 3])
def test_real_data_has_no_unexplained_turns(real_windows, n_balls):
    report = metrics.video_report(real_windows[n_balls], n_balls)
    motion = report["motion"]
    assert motion["direction_changes"] > 100  # bounces happen and are seen ...
    assert motion["unexplained_changes"] == 0  # ... and every one of them is explained
    expected_speed = 1.5 if n_balls == 1 else 0.79  # 2 sub-steps * 0.5 * |v|, in pixels
    assert motion["mean_speed"] == pytest.approx(expected_speed, rel=0.05)
    if n_balls == 1:
        assert report["right_count_fraction"] == 1.0
    else:  # real 3-ball data: exactly 3 on 88% of frames, 2 on 12%, 1 rarely
        assert report["right_count_fraction"] == pytest.approx(0.88, abs=0.03)
        assert report["balls_per_frame"]["2"] == pytest.approx(0.12, abs=0.03)
        assert report["balls_per_frame"]["4"] == 0.0


@pytest.mark.parametrize("n_balls,expected", [(1, 0.0779), (3, 0.2061)])
def test_distance_between_independent_real_frames(n_balls, expected):
    frames = pixels.to_signed(sequences.generate(400, n_balls, length=128, seed=12)).reshape(-1, 30, 30)
    value = metrics.mean_pair_distance(frames, np.random.default_rng(0), pairs=4000)
    assert value == pytest.approx(expected, rel=0.04)


def test_distance_between_videos_shows_collapse():
    real = pixels.to_signed(sequences.generate(10, 3, length=30, seed=4))
    apart = metrics.between_videos(real)
    assert apart["mean"] == pytest.approx(0.206, rel=0.15)  # independent videos: like independent frames
    assert apart["near_identical_fraction"] == 0.0
    collapsed = metrics.between_videos(np.concatenate([real[:1]] * 5 + [real[1:3]]))
    assert collapsed["near_identical_fraction"] == pytest.approx(10 / 21)  # the 5 copies: 10 of 21 pairs
    assert metrics.video_report(real, 3)["between_videos"] == apart


def test_metrics_import_without_torch():
    code = "import sys, balls.metrics, balls.sequences, balls.manifest, training.data, training.config; "
    code += "assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_real_data_table_cli(capsys):
    metrics.main(["--balls", "1", "--videos", "4", "--seed", "3"])
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[2].startswith("| 1 | 0.02") and "1: 100.0%" in out[2]
