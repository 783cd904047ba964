"""The README's way through (generate, train, export, serve) run as written, in a copy of the
repository's tracked files (what a fresh clone holds) whose .venv is this environment. Each block
marked `<!-- readme-test: NAME -->` runs unchanged except for its port numbers (free ones here)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inference.local_server import bentoml_serve
from tests.conftest import ROOT, env_with, free_port
from tests.serving import decode_gif

BLOCK = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```(bash|python)\n(.*?)```", re.S)
BLOCKS = {name: (lang, code) for name, lang, code in BLOCK.findall((ROOT / "README.md").read_text())}


def test_the_readme_marks_its_path():
    assert {"generate", "client", "cli", "train", "export", "serve", "serve-query"} <= BLOCKS.keys()


@pytest.fixture(scope="module")
def clone(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        if (ROOT / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, root / name)
    (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return root


def code_of(name: str, ports: dict[int, int]) -> tuple[str, str]:
    lang, code = BLOCKS[name]
    for written, used in ports.items():
        code = re.sub(rf"(localhost:|--port ){written}\b", rf"\g<1>{used}", code)
    return lang, code


def run_block(name: str, cwd: Path, ports: dict[int, int] | None = None, timeout: float = 300) -> str:
    lang, code = code_of(name, ports or {})
    argv = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [str(cwd / ".venv/bin/python"), "-c", code]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env_with())
    assert done.returncode == 0, f"README block {name!r} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_generate_blocks(clone):
    port = free_port()
    with bentoml_serve(str(clone / ".venv/bin/bentoml"), clone, port, env_with()):
        out = run_block("generate", clone, {3000: port})
        assert decode_gif((clone / "video.gif").read_bytes()).shape == (30, 120, 120)
        assert (clone / "video.mp4").read_bytes()[4:8] == b"ftyp"
        videos = json.loads((clone / "videos.json").read_text())["videos"]
        assert [v["seed"] for v in videos] == [0, 1, 2, 3]
        assert (clone / "frame.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        models = json.loads(out)
        assert models["default"] == "3balls" and set(models["variants"]) == {"3balls", "1ball-swap"}

        printed = run_block("client", clone, {3000: port}).split()
        assert printed[0] == "swap.gif" and decode_gif((clone / "swap.gif").read_bytes()).shape == (30, 120, 120)
        assert len(re.findall(r"0\.\d+", " ".join(printed[1:]))) == 4


def test_cli_block(clone):
    out = run_block("cli", clone)
    assert "wrote video.mp4 (3balls, seed 7)" in out
    assert len(json.loads((clone / "videos" / "metrics.json").read_text())["videos"]) == 16
    assert len(list((clone / "videos").glob("*.gif"))) == 16
    assert (clone / "frame.png").exists()


def test_train_export_serve_blocks(clone):
    run_block("train", clone)
    assert (clone / "runs/mine/frames/latest.pt").exists() and (clone / "runs/mine/video/latest.pt").exists()
    assert (clone / "runs/mine/video/stats.jsonl").read_text().strip()
    run_block("export", clone)
    manifest = json.loads((clone / "my-models/manifest.json").read_text())
    assert manifest["variants"]["mine"]["trained"] is False  # a smoke model says what it is

    port = free_port()
    _, serve = code_of("serve", {3001: port})
    log = open(clone / "serve.log", "w+b")
    proc = subprocess.Popen(["bash", "-c", serve], cwd=clone, env=env_with(), stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (clone / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://localhost:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the README's serve block was not ready after 120 s"
            time.sleep(0.5)
        run_block("serve-query", clone, {3001: port})
        assert decode_gif((clone / "mine.gif").read_bytes()).shape == (30, 120, 120)
        listed = httpx.post(f"http://localhost:{port}/models", json={}).json()
        assert listed["default"] == "mine" and list(listed["variants"]) == ["mine"]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # bash and the server it started: one process group
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        log.close()
