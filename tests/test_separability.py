"""training.separability: which features tell two sets of videos apart (real simulator videos here,
so the right answers are known)."""

import json

import numpy as np
import pytest

from balls.pixels import to_signed
from balls.sequences import generate
from training import separability


@pytest.fixture(scope="module")
def real():
    return to_signed(generate(60, 3, length=30, seed=5)), to_signed(generate(60, 3, length=30, seed=6))


def test_real_against_real_carries_nothing(real):
    result = separability.separability(*real, balls=3)
    assert set(result["features"]) == set(separability.FEATURES)
    assert result["all"] < 0.75  # 0.5 under the null; 120 videos, 5 folds
    assert max(row["accuracy"] for row in result["features"].values()) < 0.8
    speeds = [result["features"]["speed_mean"][k] for k in ("real", "generated")]
    assert 0.6 < min(speeds) and max(speeds) < 1.0  # the data's ~0.8 px/frame per ball


def test_holds_and_jumps_are_named(real):
    a, b = real
    held = b[:, np.repeat(np.arange(15), 2)]  # every frame twice: hold, then a step twice as long
    result = separability.separability(a, held, balls=3)
    rows = result["features"]
    assert rows["changed_pixels_cv"]["accuracy"] > 0.95 and rows["energy_spread"]["accuracy"] > 0.95
    assert rows["changed_pixels_cv"]["generated"] > 3 * rows["changed_pixels_cv"]["real"]
    assert rows["wrong_count"]["accuracy"] < 0.8  # the frames themselves are real ones
    assert result["all"] > 0.95


def test_command_line_on_an_exported_variant(smoke_models, tmp_path, capsys):
    out = tmp_path / "sep.json"
    separability.main(["--models", str(smoke_models), "--variant", "3balls", "--videos", "20", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["videos"] == [20, 20] and result["variant"] == "3balls"
    assert "| **all together** |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        separability.main(["--models", str(smoke_models)])  # no --variant
