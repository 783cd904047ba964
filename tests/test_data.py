"""The simulator and renderer (balls), the data-set file and readers of training.data (and the torch views)."""

import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from balls import metrics, pixels, sequences, simulator
from balls import reference as ref
from balls import render as renderer
from training import data


def test_same_seed_same_bytes_whatever_the_chunking():
    a = sequences.generate(12, 3, length=20, res=30, seed=3)
    b = sequences.generate(12, 3, length=20, res=30, seed=3)
    assert a.dtype == np.uint8 and a.shape == (12, 20, 30, 30)
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, sequences.generate(12, 3, length=20, res=30, seed=4))
    # sequence 1005 lives in block 1: producing 1010 sequences or block 1 alone gives the same bytes
    many = sequences.generate(1010, 2, length=4, res=16, seed=3)
    assert np.array_equal(many[1005], sequences.generate_block(3, 1, 2, 4, 16)[5])
    assert np.array_equal(many[:12], sequences.generate(12, 2, length=4, res=16, seed=3))


def test_start_has_no_overlap_and_no_wall_contact():
    pos, vel = simulator.initial_state(np.random.default_rng(0), 5000, 4)
    assert (pos - simulator.RADIUS >= 0).all() and (pos + simulator.RADIUS <= simulator.BOX).all()
    i, j = np.triu_indices(4, 1)
    assert (np.linalg.norm(pos[:, i] - pos[:, j], axis=-1) >= 2 * simulator.RADIUS).all()
    assert np.allclose(np.sqrt((vel**2).sum(axis=(1, 2))), simulator.SPEED_NORM)


def test_energy_is_conserved_and_balls_stay_in_the_box():
    pos, vel = simulator.initial_state(np.random.default_rng(1), 500, 3)
    traj = simulator.simulate(pos, vel, 128)
    energy = (traj.velocities**2).sum(axis=(2, 3))  # (N, T)
    assert np.allclose(energy, simulator.SPEED_NORM**2, rtol=0, atol=1e-12)
    assert traj.wall_bounces.sum() > 1000 and traj.collisions.sum() > 100  # the test saw both events
    p = traj.positions
    assert (p > 0).all() and (p < simulator.BOX).all()
    # a centre passes r from a wall by at most two sub-steps (a collision can turn it back into the
    # wall once) before the wall turns it round
    slack = 2 * simulator.EPS * np.abs(traj.velocities).max()
    assert (p >= simulator.RADIUS - slack).all() and (p <= simulator.BOX - simulator.RADIUS + slack).all()


def test_vectorised_simulation_equals_the_loop_version_from_the_same_start():
    pos, vel = simulator.initial_state(np.random.default_rng(2), 40, 3)
    traj = simulator.simulate(pos, vel, 128)
    for s in range(40):
        positions, walls, hits = ref.simulate_loop(pos[s], vel[s], 128)
        np.testing.assert_allclose(traj.positions[s], positions, rtol=0, atol=1e-9)
        assert (walls, hits) == (traj.wall_bounces[s], traj.collisions[s])


@pytest.mark.slow
def test_vectorised_generator_agrees_with_the_loop_version_in_distribution():
    n_loop, n_vec = 150, 1500
    rng = np.random.default_rng(5)
    loop_speed, loop_walls, loop_hits, loop_mse = [], [], [], []
    for _ in range(n_loop):
        pos, vel = ref.initial_state_loop(rng, 3)
        positions, walls, hits = ref.simulate_loop(pos, vel, 128)
        loop_speed.append(np.linalg.norm(vel, axis=1))
        loop_walls.append(walls)
        loop_hits.append(hits)
        frames = np.rint(ref.render_loop(positions[:30], 30) * 255).astype(np.uint8)
        loop_mse.append(metrics.consecutive_frame_mse(pixels.to_signed(frames)))
    pos, vel = simulator.initial_state(np.random.default_rng(6), n_vec, 3)
    traj = simulator.simulate(pos, vel, 128)
    vec_frames = renderer.render(traj.positions[:, :30], 30, as_uint8=True)
    vec_mse = metrics.consecutive_frame_mse(pixels.to_signed(vec_frames))
    pairs = [
        (np.concatenate(loop_speed), np.linalg.norm(vel, axis=2).ravel()),
        (np.array(loop_walls), traj.wall_bounces),
        (np.array(loop_hits), traj.collisions),
        (np.array(loop_mse), vec_mse),
    ]
    for a, b in pairs:
        assert stats.ks_2samp(a, b).pvalue > 0.01
    # the start positions too: uniform over the allowed square, the same marginal in both
    loop_pos = np.array([ref.initial_state_loop(rng, 3)[0] for _ in range(n_loop)]).ravel()
    assert stats.ks_2samp(loop_pos, pos.ravel()).pvalue > 0.01


def test_render_matches_the_reference_formula():
    pos, vel = simulator.initial_state(np.random.default_rng(3), 20, 3)
    centres = simulator.simulate(pos, vel, 64).positions
    fast = renderer.render(centres, 30)
    assert fast.dtype == np.float32 and fast.shape == (20, 64, 30, 30)
    np.testing.assert_allclose(fast, renderer.render_dense(centres, 30), rtol=0, atol=1e-6)
    np.testing.assert_allclose(fast[0], ref.render_loop(centres[0], 30), rtol=0, atol=1e-6)
    # stored bytes: at most a rounding tie in a million pixels may differ, and only by one level
    u8 = renderer.render(centres, 30, as_uint8=True).astype(int)
    diff = np.abs(u8 - pixels.to_uint8(renderer.render_dense(centres, 30)).astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-5
    # one thread or several, any resolution: the same frames
    np.testing.assert_array_equal(renderer.render(centres, 30, workers=1), fast)
    assert renderer.render(centres[:2, :3], 17).shape == (2, 3, 17, 17)


def test_render_geometry():
    # a ball at (x=2.5, y=7.5) lights column 7.5 and row 22.5 of a 30-pixel frame: x is the column
    frame = renderer.render(np.array([[[2.5, 7.5]]]), 30)[0]
    r, c = np.unravel_index(frame.argmax(), frame.shape)
    assert (r, c) == (22, 7)
    assert frame.max() == pytest.approx(1.0, abs=1e-3) and frame.min() >= 0


@pytest.mark.parametrize("n_balls,expected,tol", [(1, 0.0222, 0.0010), (3, 0.0353, 0.0020)])
def test_real_data_metric_matches_design_figures(real_videos, n_balls, expected, tol):
    summary = metrics.summarize(metrics.consecutive_frame_mse(real_videos[n_balls]))
    assert summary["n"] == 30
    assert abs(summary["mean"] - expected) <= tol


def test_cli_writes_a_memory_mappable_npy(tmp_path, capsys):
    out = tmp_path / "sets" / "bb.npy"
    data.main(["--balls", "2", "--sequences", "7", "--length", "12", "--res", "20", "--seed", "5", "--out", str(out)])
    assert "sequences/s" in capsys.readouterr().out
    arr = data.open_dataset(out)
    assert isinstance(arr, np.memmap) and arr.shape == (7, 12, 20, 20) and arr.dtype == np.uint8
    assert np.array_equal(arr, sequences.generate(7, 2, length=12, res=20, seed=5))
    assert [p.name for p in out.parent.iterdir()] == ["bb.npy"]  # no partial file left behind


def test_cli_rejects_bad_arguments(tmp_path):
    for bad in (["--balls", "0"], ["--sequences", "-1"], ["--seed", "-3"]):
        with pytest.raises(SystemExit) as exc:
            data.main([*bad, "--out", str(tmp_path / "x.npy")])
        assert exc.value.code == 2
    assert not (tmp_path / "x.npy").exists()


def test_cli_runs_as_a_module(tmp_path):
    out = tmp_path / "m.npy"
    cmd = [
        sys.executable,
        "-m",
        "training.data",
        "--balls",
        "1",
        "--sequences",
        "3",
        "--length",
        "5",
        "--out",
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "wrote" in done.stdout and data.open_dataset(out).shape == (3, 5, 30, 30)


def test_open_dataset_explains_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.open_dataset(tmp_path / "missing.npy")
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="expected uint8"):
        data.open_dataset(tmp_path / "f.npy")
    (tmp_path / "junk.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ValueError, match="not a readable"):
        data.open_dataset(tmp_path / "junk.npy")


def test_sampling_windows_and_frames():
    seqs = sequences.generate(10, 3, length=40, res=30, seed=1)
    rng = np.random.default_rng(0)
    w = data.sample_windows(seqs, rng, 6, length=30)
    f = data.sample_frames(seqs, rng, 5)
    assert w.shape == (6, 30, 30, 30) and f.shape == (5, 30, 30)
    assert w.dtype == np.float32 and w.min() >= -1 and w.max() <= 1 and w.max() > 0.9
    assert np.isin(pixels.to_signed(seqs).reshape(-1, 900).tolist()[0][0], w).any()
    with pytest.raises(ValueError):
        data.sample_windows(seqs, rng, 2, length=41)


def test_stream_batches_look_like_the_data_set():
    frames = next(data.stream("frames", 64, 3, seed=1))
    windows = next(data.stream("windows", 30, 1, length=30, seed=1))
    assert frames.shape == (64, 30, 30) and windows.shape == (30, 30, 30, 30)
    mse = metrics.summarize(metrics.consecutive_frame_mse(windows))["mean"]
    assert abs(mse - 0.0222) < 0.0015
    assert (metrics.count_balls(frames) >= 1).all()
    with pytest.raises(ValueError, match="kind"):
        data.stream("clips", 4, 3)
    with pytest.raises(ValueError):
        data.stream("windows", 4, 3, length=200)


def test_torch_datasets(tmp_path):
    torch = pytest.importorskip("torch")
    from training.datasets import FrameDataset, SimulatedBatches, VideoDataset

    path = tmp_path / "d.npy"
    data.write_dataset(path, 9, 2, length=40, res=30, seed=2)
    seqs = data.open_dataset(path)
    frames, videos = FrameDataset(seqs, seed=1), VideoDataset(seqs, length=30, seed=1)
    assert len(frames) == len(videos) == 9
    x, v = frames[3], videos[3]
    assert x.shape == (1, 30, 30) and v.shape == (30, 30, 30) and x.dtype == torch.float32
    assert torch.equal(videos[3], v)  # same epoch: same window
    before = [videos[i] for i in range(9)]
    videos.set_epoch(1)
    assert sum(not torch.equal(videos[i], before[i]) for i in range(9)) >= 3  # a new epoch, new windows
    loader = torch.utils.data.DataLoader(frames, batch_size=4)
    assert next(iter(loader)).shape == (4, 1, 30, 30)
    batch = next(iter(SimulatedBatches("frames", 8, 3, seed=0)))
    assert batch.shape == (8, 1, 30, 30) and -1 <= batch.min() and batch.max() <= 1
    with pytest.raises(ValueError):
        VideoDataset(seqs, length=41)
