"""The manifold ceiling (training/ceiling.py): projecting frames into a G_F finds z that re-render them."""

import json

import numpy as np
import torch

from tests.conftest import ROOT
from training import ceiling
from training.build import load_frame_generator


def test_projection_recovers_frames_the_generator_can_make():
    gf, _, _ = load_frame_generator(ROOT / "checkpoints" / "cpu-frames-1ball.pt")  # the shipped 1-ball G_F
    torch.manual_seed(0)
    a, b = torch.randn(2, 1, 100)
    path = a + torch.linspace(0, 0.3, 5)[:, None] * (b - a)  # a short line in z: (5, 100)
    with torch.no_grad():
        target = gf(path)[:, 0].numpy()[None]  # (1, 5, 30, 30): a "video" G_F can make exactly
        far = np.abs(gf(torch.randn(5, 100))[:, 0].numpy() - target[0]).mean()
    z = ceiling.project(gf, target, steps=100, starts=4, lr=0.05, seed=1)
    with torch.no_grad():
        again = gf(torch.from_numpy(z[0]))[:, 0].numpy()
    assert z.shape == (1, 5, 100)
    assert np.abs(again - target[0]).mean() < 0.2 * far  # much closer than random z


def test_ceiling_cli_writes_its_figures(smoke_runs, tmp_path, capsys):
    out = tmp_path / "ceiling.json"
    ceiling.main(["--frames", str(smoke_runs["frames1"]), "--videos", "2", "--steps", "3", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["balls"] == 1 and result["videos"] == 2 and 0 <= result["binarised_error"] <= 1
    assert {"teleport_rate", "unexplained_rate", "speed_w1"} <= result["rendered"]["physics"].keys()
    assert result["real"]["physics"]["teleport_rate"] == 0
    assert "binarised error" in capsys.readouterr().out


def test_rerendered_real_videos_make_a_data_set_stage_2_trains_on(smoke_runs, tmp_path, capsys):
    from balls.pixels import to_signed
    from balls.sequences import generate
    from training.data import open_dataset
    from training.run import main as train

    path = tmp_path / "data" / "rerendered.npy"
    shipped = ROOT / "checkpoints" / "cpu-frames-1ball.pt"  # a trained 1-ball G_F: a real projection
    ceiling.main(["--frames", str(shipped), "--videos", "3", "--steps", "60", "--seed", "4", "--write-data", str(path)])
    assert "wrote" in capsys.readouterr().out and not list(path.parent.glob("*.partial"))
    data = open_dataset(path)
    real = generate(3, 1, length=30, seed=4)
    assert data.shape == real.shape == (3, 30, 30, 30)
    drawn, truth = to_signed(np.asarray(data)) > 0, to_signed(real) > 0
    assert np.mean(drawn != truth) < 0.03  # the real videos, drawn by G_F
    assert np.mean(drawn != np.roll(truth, 1, axis=0)) > 0.05  # ... each its own video
    out = tmp_path / "run"
    train(["--stage", "video", "--preset", "smoke", "--no-progress", "--steps", "2", "--balls", "1",
           "--frames-checkpoint", str(smoke_runs["frames1"]), "--data", str(path), "--out", str(out)])  # fmt: skip
    assert (out / "video" / "latest.pt").is_file()
