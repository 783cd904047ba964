"""training.gain: how evenly G_F turns a step in z into a change on screen, on generators whose
answers are known (linear maps), then on an exported variant through the command line."""

import json

import numpy as np
import pytest

from training import gain
from training.evaluate import Source

LATENT, SIDE = 8, 30


def linear_source(matrix: np.ndarray, steps: np.ndarray | None = None) -> Source:
    """G_F(z) = matrix @ z as a 30x30 frame; G_V walks z_v + cumulative ``steps`` (T-1, latent)."""

    def frames(z: np.ndarray) -> np.ndarray:
        return (z @ matrix.T).reshape(len(z), SIDE, SIDE).astype(np.float32)

    def videos(zv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        path = zv[:, None] + np.concatenate([np.zeros((1, LATENT)), np.cumsum(steps, axis=0)])[None]
        zf = path.astype(np.float32)
        return frames(zf.reshape(-1, LATENT)).reshape(*zf.shape[:2], SIDE, SIDE), zf

    return Source(frames, videos if steps is not None else None, LATENT, 3, {})


def orthonormal(rng: np.random.Generator, scale: float) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((SIDE * SIDE, LATENT)))
    return scale * q  # (900, latent) with orthogonal columns of norm `scale`


def test_an_even_generator_has_one_gain_everywhere():
    rng = np.random.default_rng(0)
    steps = np.tile(rng.standard_normal(LATENT) * 0.1, (29, 1))  # one step, repeated: a steady walk
    result = gain.measure(linear_source(orthonormal(rng, 4.0), steps), balls=3, seed=1, count=20, eps=0.5)
    points, paths = result["points"], result["paths"]
    assert points["median"] == pytest.approx(4.0, rel=1e-4) and points["spread"] < 1e-4
    assert paths["path_gain_median"] == pytest.approx(4.0, rel=1e-4)
    assert paths["pixel_step_spread"] < 1e-4 and paths["z_step_spread"] < 1e-4
    assert paths["random_gain_spread"] < 1e-4 and paths["video_speed_spread"] < 1e-4  # every video one speed
    assert 0.0 < paths["pixel_step_spread_real"] < 0.2  # real balls keep their speed between contacts
    assert 0.0 < paths["video_speed_spread_real"] < 0.3
    assert result["spectrum"]["singular_values"] == pytest.approx([4.0] * LATENT, rel=1e-3)
    assert result["spectrum"]["participation"] == pytest.approx(LATENT, rel=1e-3)  # every direction alike
    assert result["spectrum"]["ball_gain_spread"] < 1e-3
    assert result["spectrum"]["ball_gain_ratio"] == pytest.approx(1.0, rel=1e-4)


def test_an_uneven_generator_and_an_uneven_walk_are_seen():
    rng = np.random.default_rng(0)
    matrix = orthonormal(rng, 1.0) * np.geomspace(0.2, 20, LATENT)  # gains of 0.2 to 20 by direction
    lengths = np.where(np.arange(29) % 2, 0.02, 0.2)[:, None]  # short, long, short, ...
    steps = lengths * np.eye(LATENT)[0]
    result = gain.measure(linear_source(matrix, steps), balls=3, seed=1, count=20, eps=0.5)
    assert result["points"]["p95"] > 2 * result["points"]["p5"] and result["points"]["spread"] > 0.2
    paths = result["paths"]
    assert paths["z_step_spread"] == pytest.approx(lengths.std() / lengths.mean(), rel=1e-3)
    assert paths["pixel_step_spread"] == pytest.approx(paths["z_step_spread"], rel=1e-3)  # one direction
    assert paths["path_gain_median"] == pytest.approx(0.2, rel=1e-3)  # the first direction's gain
    assert paths["video_speed_spread"] < 1e-4  # uneven within each video, the same walk in every one
    gains = np.geomspace(0.2, 20, LATENT)[::-1]
    q = result["spectrum"]  # the 6 directions of 3 balls, then two more of the 8
    assert q["ball_directions"] == 6 and q["singular_values"] == pytest.approx(gains, rel=1e-3)
    assert q["ball_gain_ratio"] == pytest.approx(gains[0] / gains[5], rel=1e-3)
    assert q["ball_gain_spread"] == pytest.approx(gains[:6].std() / gains[:6].mean(), rel=1e-3)
    assert q["rest_over_largest"] == pytest.approx(gains[6] / gains[0], rel=1e-3)
    energy = gains**2
    assert q["participation"] == pytest.approx(energy.sum() ** 2 / (energy**2).sum(), rel=1e-3)


def test_videos_of_different_speeds_are_seen():
    rng = np.random.default_rng(0)
    matrix = orthonormal(rng, 1.0) * np.geomspace(0.2, 20, LATENT)
    source = linear_source(matrix, np.tile(np.eye(LATENT)[0] * 0.1, (29, 1)))
    slow_or_fast = source.videos  # every other video walks its path ten times as fast

    def videos(zv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        frames, zf = slow_or_fast(zv)
        scale = np.where(np.arange(len(zv)) % 2, 10.0, 1.0)[:, None, None]
        zf = zf[:, :1] + (zf - zf[:, :1]) * scale
        return source.frames(zf.reshape(-1, LATENT)).reshape(frames.shape), zf.astype(np.float32)

    result = gain.measure(Source(source.frames, videos, LATENT, 3, {}), balls=3, seed=1, count=20, eps=0.5)
    assert result["paths"]["video_speed_spread"] == pytest.approx(9 / 11, rel=1e-3)  # speeds 1 and 10


def ball_source(wobble: float) -> Source:
    """One rendered ball whose centre folds z's first two coordinates into the box (a triangle wave:
    a straight walk in z is a ball bouncing at one speed), plus ``wobble`` x sin(3.2 z) before the
    fold: a G_F whose gain changes every few frames along a walk."""
    from balls.pixels import to_signed
    from balls.render import render
    from balls.simulator import BOX, RADIUS

    half = BOX / 2 - RADIUS - 0.05

    def frames(z: np.ndarray) -> np.ndarray:
        u = (z[:, :2] + wobble * np.sin(3.2 * z[:, :2])) / half  # box units over the free half-width
        folded = 1 - np.abs(4 * ((u + 1) / 4 - np.floor((u + 1) / 4)) - 2)  # in [-1, 1], slope 1
        return to_signed(render((BOX / 2 + half * folded)[:, None, :], SIDE, as_uint8=True))

    return Source(frames, None, 4, 1, {})


def test_straight_walks_show_a_g_f_that_makes_its_ball_waver():
    steady = gain.straight_walks(ball_source(0.0), 1, 3, *gain.spectrum_points(ball_source(0.0), 3, 40))
    wavering = gain.straight_walks(ball_source(0.15), 1, 3, *gain.spectrum_points(ball_source(0.15), 3, 40))
    assert steady["teleport_rate"] == 0.0 and steady["unexplained_rate"] < 0.02
    assert steady["speed_jitter"] < 2 * steady["speed_jitter_real"]  # straight and even: as real as tracking
    assert steady["mean_speed"] == pytest.approx(steady["mean_speed_real"], rel=0.05)  # steps sized to real speed
    assert wavering["speed_jitter"] > 3 * steady["speed_jitter"]


def test_command_line_on_an_exported_variant(smoke_models, tmp_path, capsys):
    out = tmp_path / "gain.json"
    gain.main(["--models", str(smoke_models), "--variant", "3balls", "--count", "8", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["variant"] == "3balls" and set(result) >= {"points", "paths"}
    assert result["points"]["median"] > 0 and np.isfinite(result["paths"]["path_gain_spread"])
    assert "gain along the path" in (text := capsys.readouterr().out) and "Jacobian spectrum" in text
    assert "Straight walks" in text and set(result["walks"]) >= {"speed_jitter", "speed_jitter_real"}
    assert len(result["spectrum"]["singular_values"]) == 8  # 2 x 3 balls, and two more
    with pytest.raises(SystemExit):
        gain.main(["--models", str(smoke_models)])  # no --variant


def test_command_line_on_a_frames_checkpoint(smoke_runs, capsys):
    gain.main(["--frames", str(smoke_runs["frames"]), "--count", "8"])
    text = capsys.readouterr().out
    assert "spread over points" in text and "along the G_V's paths" not in text.lower()
