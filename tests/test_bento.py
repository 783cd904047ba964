"""`bentoml build` of both bentofiles (CPU and GPU image), then the bentos served the way their
containers would: from their src/ directories, the CPU one with its own requirements.txt in a fresh
virtual environment (no Docker engine runs here). Builds run with every package index shut off."""

import subprocess
import sys
import venv
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import ROOT, env_with, free_port
from tests.serving import bentoml_serve

BENTOML = str(Path(sys.executable).with_name("bentoml"))
OFFLINE = {"PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "UV_OFFLINE": "1"}
BENTOFILES = {"bouncing-balls": "bentofile.yaml", "bouncing-balls-gpu": "bentofile.gpu.yaml"}


@pytest.fixture(scope="module")
def bentos(tmp_path_factory) -> dict[str, Path]:
    """Both bentos, each built twice with no package index reachable (the second build must not
    need one either); the newest build of each."""
    home = tmp_path_factory.mktemp("bentoml-home")
    env = env_with(BENTOML_HOME=str(home), BENTOML_DO_NOT_TRACK="True", **OFFLINE)
    for _ in range(2):
        for file in BENTOFILES.values():
            done = subprocess.run([BENTOML, "build", "-f", file, "--do-not-track"], cwd=ROOT, env=env,
                                  capture_output=True, text=True)  # fmt: skip
            assert done.returncode == 0, done.stderr[-3000:]
            assert "installing" not in done.stderr.lower(), done.stderr[-3000:]
    out = {}
    for name in BENTOFILES:
        builds = sorted(
            (p for p in (home / "bentos" / name).iterdir() if p.name != "latest"), key=lambda p: p.stat().st_mtime
        )
        assert len(builds) == 2
        out[name] = builds[-1]
    return out


def source_files(bento: Path) -> set[str]:
    src = bento / "src"
    return {str(p.relative_to(src)) for p in src.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_both_bentofiles_list_the_same_sources():
    cpu, gpu = (yaml.safe_load((ROOT / f).read_text()) for f in BENTOFILES.values())
    assert cpu["include"] == gpu["include"] and cpu["exclude"] == gpu["exclude"]
    assert cpu["service"] == gpu["service"]


def test_bento_contents(bentos):
    cpu, gpu = bentos["bouncing-balls"], bentos["bouncing-balls-gpu"]
    requirements = (cpu / "env" / "python" / "requirements.txt").read_text().split()
    names = {r.split("==")[0].lower() for r in requirements}
    assert {"bentoml", "onnxruntime", "numpy", "scipy", "pillow", "av"} <= names
    assert not any(n.startswith("torch") for n in names)  # serving needs no torch
    assert all("==" in r for r in requirements)  # pinned
    dockerfile = (cpu / "env" / "docker" / "Dockerfile").read_text()
    assert "FROM python:3.11" in dockerfile and "requirements.txt" in dockerfile
    files = source_files(cpu)
    assert files == source_files(gpu)  # the two images serve the same code
    for f in ("service.py", "balls/metrics.py", "balls/manifest.py", "inference/models.py", "inference/gallery.html"):
        assert f in files, f
    assert any(f.startswith("models/") and f.endswith(".onnx") for f in files)
    assert not [f for f in files if f.startswith(("training/", "export/", "tests/", "benchmarks/"))]


def test_gpu_bento_swaps_onnxruntime_for_onnxruntime_gpu(bentos):
    gpu = bentos["bouncing-balls-gpu"]
    names = {r.split("==")[0] for r in (gpu / "env" / "python" / "requirements.txt").read_text().split()}
    assert "onnxruntime-gpu" in names and "onnxruntime" not in names
    assert "nvidia/cuda" in (gpu / "env" / "docker" / "Dockerfile").read_text()


def test_gpu_bento_sources_start_and_serve(bentos, tmp_path):
    """The GPU image's src/ under this machine's packages (ONNX Runtime falls back to the CPU): a
    missing source file (e.g. the gallery page) would stop the start."""
    env = env_with(BENTOML_HOME=str(tmp_path / "bh"))
    with bentoml_serve(BENTOML, bentos["bouncing-balls-gpu"] / "src", free_port(), env) as url:
        r = httpx.post(f"{url}/generate_video", json={"seed": 1}, timeout=60)
        assert r.status_code == 200 and r.content[:6] == b"GIF89a"
        assert httpx.get(f"{url}/gallery/", timeout=10).status_code == 200


@pytest.mark.slow
def test_bento_serves_from_a_fresh_environment_with_its_own_requirements(bentos, tmp_path):
    bento = bentos["bouncing-balls"]
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
        assert httpx.get(f"{url}/gallery/", timeout=10).status_code == 200
