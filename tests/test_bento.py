"""`bentoml build`, then the bento served the way its container would: its own requirements.txt in a
fresh virtual environment, `bentoml serve` from its src/ directory (no Docker engine runs here)."""

import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, env_with, free_port
from tests.serving import bentoml_serve

BENTOML = str(Path(sys.executable).with_name("bentoml"))


@pytest.fixture(scope="module")
def bento(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("bentoml-home")
    env = env_with(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True")
    subprocess.run([BENTOML, "build", "--do-not-track"], cwd=ROOT, env=env, check=True, capture_output=True)
    (path,) = [p for p in (home / "bentos" / "bouncing-balls").iterdir() if p.name != "latest"]
    return path


def test_bento_contents(bento):
    requirements = (bento / "env" / "python" / "requirements.txt").read_text().split()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"bentoml", "onnxruntime", "numpy", "scipy", "pillow", "av"} <= names
    assert not any(n.startswith("torch") for n in names)  # serving needs no torch
    assert all("==" in r for r in requirements)  # pinned
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile and "requirements.txt" in dockerfile
    src = bento / "src"
    for f in ("service.py", "inference/models.py", "inference/media.py", "training/metrics.py", "models/manifest.json"):
        assert (src / f).is_file(), f
    assert list((src / "models").glob("*.onnx"))
    assert not (src / "training" / "run.py").exists()  # the torch side stays out of the image


def test_gpu_bento_swaps_onnxruntime_for_onnxruntime_gpu(tmp_path):
    env = env_with(BENTOML_HOME=str(tmp_path), BENTOML_DO_NOT_TRACK="True")
    cmd = [BENTOML, "build", "-f", "bentofile.gpu.yaml", "--do-not-track"]
    subprocess.run(cmd, cwd=ROOT, env=env, check=True, capture_output=True)
    (path,) = [p for p in (tmp_path / "bentos" / "bouncing-balls-gpu").iterdir() if p.name != "latest"]
    names = {r.split("==")[0] for r in (path / "env" / "python" / "requirements.txt").read_text().split()}
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert "nvidia/cuda" in (path / "env" / "docker" / "Dockerfile").read_text()


@pytest.mark.slow
def test_bento_serves_from_a_fresh_environment_with_its_own_requirements(bento, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    requirements = bento / "env" / "python" / "requirements.txt"
    subprocess.run([py, "-m", "pip", "install", "-q", "-r", requirements], check=True, capture_output=True)
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "BENTOML_HOME": str(tmp_path / "bh")}
    with bentoml_serve(str(env_dir / "bin" / "bentoml"), bento / "src", free_port(), env) as url:
        r = httpx.post(f"{url}/generate_video", json={"seed": 1}, timeout=60)
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif" and r.content[:6] == b"GIF89a"
        assert float(r.headers["x-consecutive-frame-mse"]) >= 0
