"""`python -m training.evaluate`: Table 1, the physics and the two-sample test as JSON and Markdown,
and the figures; from checkpoints and from an exported variant (no torch needed for the latter)."""

import json
import subprocess
import sys

import pytest
from PIL import Image

from balls import metrics
from balls.pixels import to_signed
from balls.sequences import generate
from training.evaluate import main


def test_evaluate_writes_table_and_figures(smoke_runs, tmp_path, capsys):
    out = tmp_path / "eval"
    main(["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--balls", "3",
          "--out", str(out), "--seed", "5", "--motion-videos", "20", "--c2st-videos", "20"])  # fmt: skip
    table = json.loads((out / "table1.json").read_text())
    assert table["balls"] == 3 and table["videos"] == 30 and table["seed"] == 5
    assert set(table["rows"]) == {"real", "generated", "random_z", "interpolation"}
    for row in table["rows"].values():
        assert {"consecutive_frame_mse", "balls_per_frame", "right_count_fraction", "motion"} <= row.keys()
        assert row["consecutive_frame_mse"]["n"] == 30
    real = table["rows"]["real"]["consecutive_frame_mse"]["mean"]
    assert real == pytest.approx(0.0353, abs=0.003)  # the real-data row is real data
    assert table["frame_samples"]["real"]["pair_distance"] == pytest.approx(0.206, rel=0.05)
    md = (out / "table1.md").read_text()
    assert "| Real data |" in md and "| Proposed (G_V over G_F) |" in md and md in capsys.readouterr().out + "\n"
    strip = Image.open(out / "fig3-strip.png")
    assert strip.size[0] > 6 * strip.size[1] // 2  # 30 frames wide, 6 videos high
    assert Image.open(out / "fig5-isomap.png").size == (600, 500)
    assert Image.open(out / "paths.png").size[0] > 400
    for key in ("motion", "motion_real"):
        assert {"teleport_rate", "unexplained_rate", "speed_w1", "energy_spread", "speed_jitter"} <= table[key].keys()
    assert table["motion_real"]["teleport_rate"] == 0 and table["motion_real"]["unexplained_rate"] == 0
    assert table["motion_real"]["speed_jitter"] < 0.2 and "| speed jitter |" in md
    for key in ("motion", "motion_real"):  # Table 1's metric and the count on the physics videos too
        m = table[key]
        assert 0 <= m["lowest_mse"] <= m["mse"] and 0 <= m["right_count"] <= 1
    real_mse = metrics.consecutive_frame_mse(to_signed(generate(table["motion_videos"], table["balls"], length=30,
                                                                seed=table["seed"] + 11)))  # fmt: skip
    assert table["motion_real"]["mse"] == pytest.approx(real_mse.mean())
    assert table["motion_real"]["lowest_mse"] == pytest.approx(real_mse.min())
    assert table["motion_real"]["right_count"] > 0.8
    for v in ("video", "motion", "frame"):
        c = table["c2st"][v]
        assert 0 <= c["ci95"][0] <= c["accuracy"] <= c["ci95"][1] <= 1 and c["test_videos"] == 40
    assert "Physics of the motion" in md and "Classifier two-sample test" in md


def test_evaluate_without_video_and_with_a_swapped_frame_generator(smoke_runs, tmp_path):
    main(["--frames", str(smoke_runs["frames1"]), "--out", str(tmp_path / "f"), "--motion-videos", "10"])
    table = json.loads((tmp_path / "f" / "table1.json").read_text())
    assert table["balls"] == 1 and "generated" not in table["rows"]  # balls default to G_F's data
    assert not (tmp_path / "f" / "fig5-isomap.png").exists()
    main(["--frames", str(smoke_runs["frames1"]), "--video", str(smoke_runs["video"]), "--out", str(tmp_path / "s"),
          "--motion-videos", "10", "--no-c2st"])  # fmt: skip
    swap = json.loads((tmp_path / "s" / "table1.json").read_text())
    assert swap["frames_checkpoint"]["balls"] == 1 and swap["video_checkpoint"]["balls"] == 3
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--frames", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")])


def test_evaluate_an_exported_variant_without_torch(smoke_models, tmp_path):
    """The output contract of --models/--variant --json, in a process where torch cannot be imported."""
    out = tmp_path / "out.json"
    code = (
        "import sys, importlib.abc\n"
        "class NoTorch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] == 'torch': raise ImportError('torch is blocked here')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "from training.evaluate import main\n"
        f"main(['--models', {str(smoke_models)!r}, '--variant', '1ball-swap', '--json', {str(out)!r}, "
        "'--no-c2st', '--motion-videos', '12', '--balls', '1'])\n"
        "assert 'torch' not in sys.modules"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    table = json.loads(out.read_text())
    assert table["variant"] == "1ball-swap" and table["balls"] == 1 and "generated" in table["rows"]
    for key in ("teleport_rate", "unexplained_rate", "speed_w1", "energy_spread"):
        assert key in table["motion"] and key in table["motion_real"]
    assert "c2st" not in table
    with pytest.raises(SystemExit, match="no variant 'nope'"):
        main(["--models", str(smoke_models), "--variant", "nope", "--json", str(out)])
    with pytest.raises(SystemExit):
        main(["--models", str(smoke_models), "--json", str(out)])  # --variant missing


def test_pick_ranks_checkpoints_by_the_validation_score(smoke_runs, tmp_path, capsys):
    from training import pick

    out = tmp_path / "pick.json"
    video = str(smoke_runs["video"])
    pick.main(["--frames", str(smoke_runs["frames"]), "--swap-frames", str(smoke_runs["frames1"]), video, video,
               "--videos-per-figure", "12", "--json", str(out)])  # fmt: skip
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and rows[0]["score"] == rows[1]["score"]  # the same checkpoint scores the same
    for row in rows:
        for variant in ("own", "swap"):
            parts = row[variant]
            assert 0 <= parts["teleport_rate"] <= 1 and 0 <= parts["unexplained_rate"] <= 1 and parts["mse"] >= 0
            assert 0 <= parts["slowest_ratio"] <= parts["mse_ratio"]  # the slowest video is at most the mean
            assert not parts["speed_jitter"] < 0  # reported beside the score (NaN where no ball was tracked)
        assert row["score"] == pytest.approx(pick.score(row["own"]) + pick.score(row["swap"]))
    assert "| checkpoint |" in capsys.readouterr().out
    both = tmp_path / "pairs.json"  # two swap G_Fs: every pair scored, the own half measured once per G_V
    pick.main(["--frames", str(smoke_runs["frames"]), "--swap-frames", str(smoke_runs["frames1"]), "--swap-frames",
               str(smoke_runs["frames"]), video, "--videos-per-figure", "12", "--json", str(both)])  # fmt: skip
    pairs = json.loads(both.read_text())
    assert sorted(r["swap_frames"] for r in pairs) == sorted([str(smoke_runs["frames1"]), str(smoke_runs["frames"])])
    assert pairs[0]["own"] == pairs[1]["own"] and pairs[0]["score"] <= pairs[1]["score"]
    same = next(r for r in pairs if r["swap_frames"] == str(smoke_runs["frames"]))
    assert same["swap"] == same["own"]  # its own G_F as the "swap": the same videos, the same figures
    assert pick.score({"teleport_rate": 0.0, "unexplained_rate": 0.0, "mse_ratio": 1.0}) == 0  # real motion scores 0
