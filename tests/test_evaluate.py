"""`python -m training.evaluate`: Table 1 as JSON and Markdown, and the two figures."""

import json

import pytest
from PIL import Image

from training.evaluate import main


def test_evaluate_writes_table_and_figures(smoke_runs, tmp_path, capsys):
    out = tmp_path / "eval"
    main(["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--balls", "3",
          "--out", str(out), "--seed", "5"])  # fmt: skip
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


def test_evaluate_without_video_and_with_a_swapped_frame_generator(smoke_runs, tmp_path):
    main(["--frames", str(smoke_runs["frames1"]), "--out", str(tmp_path / "f")])
    table = json.loads((tmp_path / "f" / "table1.json").read_text())
    assert table["balls"] == 1 and "generated" not in table["rows"]  # balls default to G_F's data
    assert not (tmp_path / "f" / "fig5-isomap.png").exists()
    main(["--frames", str(smoke_runs["frames1"]), "--video", str(smoke_runs["video"]), "--out", str(tmp_path / "s")])
    swap = json.loads((tmp_path / "s" / "table1.json").read_text())
    assert swap["frames_checkpoint"]["balls"] == 1 and swap["video_checkpoint"]["balls"] == 3
    with pytest.raises(SystemExit, match="does not exist"):
        main(["--frames", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")])
