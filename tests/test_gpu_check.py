"""benchmarks/gpu_check.py: refuses clearly without CUDA, and its code path runs (on a CPU, smoke preset)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the refusal cannot happen")
def test_refuses_without_cuda(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True, text=True)
    assert done.returncode == 2 and "no CUDA device" in done.stderr and not out.exists()


def test_the_same_checks_run_on_a_cpu(tmp_path):
    out = tmp_path / "check.json"
    cmd = [sys.executable, str(SCRIPT), "--device", "cpu", "--presets", "smoke", "--steps", "2", "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    for stage in ("smoke frames", "smoke video"):
        r = result["training"][stage]
        assert r["steps_per_s"] > 0 and r["batch"] == 8 and r["d_count"] == 4
    assert result["onnx"]["provider"] == "CPUExecutionProvider" and "note" not in result["onnx"]
    assert all(result["torch_generator"][b]["videos_per_s"] > 0 for b in ("1", "8", "32", "256"))
    # results.md's GPU section reads this file as it is written (here under the name make gpu-check gives it)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import run_all

    out.rename(tmp_path / "gpu-check.json")
    md = run_all.gpu_markdown(tmp_path)
    assert "| smoke frames step (batch 8, K=4) |" in md and md.count("videos/s") >= 4 + 4
    assert run_all.gpu_markdown(tmp_path / "nothing") == ""
    recipe = {"ms_per_step": {"video": 31.0}, "shipped_over_before": 0.5,
              "recipes": {name: {"stages": [{"kind": "video", "steps": n}], "minutes": n * 31.0 / 60_000}
                          for name, n in (("shipped", 1000), ("before", 2000))}}  # fmt: skip
    (tmp_path / "recipe-gpu.json").write_text(json.dumps(recipe))
    line = run_all.gpu_markdown(tmp_path).splitlines()[-1]  # the recipe timed there names its stages
    assert "(1,000 video) 0.5 min" in line and "(2,000 video) 1.0 min (0.50×)" in line
    assert all(result["onnx"][b]["videos_per_s"] > 0 for b in ("1", "8", "32", "256"))
