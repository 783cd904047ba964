"""The BentoML service in-process over ASGI: every endpoint and every bad input of the HTTP contract."""

import base64
import importlib
import io
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
from PIL import Image

from balls.metrics import consecutive_frame_mse
from inference.models import MODELS_ENV, ModelError, latent_from_seed, load_variants
from tests.serving import decode_gif


@pytest.fixture(scope="module")
def service_module(smoke_models):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(MODELS_ENV, str(smoke_models))
        import service

        yield importlib.reload(service)


@pytest.fixture(scope="module")
def client(service_module):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

        with TestClient(service_module.BouncingBalls.to_asgi()) as c:
            yield c


def test_generate_video_gif(client, smoke_models):
    r = client.post("/generate_video", json={"seed": 7, "fps": 12, "scale": 2})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    assert r.headers["x-seed"] == "7" and r.headers["x-model"] == "3balls"
    frames = decode_gif(r.content)
    assert frames.shape == (30, 60, 60)
    # the header is the metric of the generated frames: recompute it from the same model
    variant = load_variants(smoke_models)[0]["3balls"]
    video = variant.generate_videos(latent_from_seed(7, 100)[None])[0]
    assert float(r.headers["x-consecutive-frame-mse"]) == pytest.approx(consecutive_frame_mse(video), abs=1e-6)
    assert Image.open(io.BytesIO(r.content)).info["duration"] == 10 * round(100 / 12)  # GIF counts centiseconds


def test_same_seed_same_bytes_and_random_seed_when_absent(client):
    a = client.post("/generate_video", json={"seed": 3, "format": "mp4"})
    b = client.post("/generate_video", json={"seed": 3, "format": "mp4"})
    assert a.status_code == 200 and a.headers["content-type"] == "video/mp4" and a.content == b.content
    assert a.content[4:8] == b"ftyp"
    c = client.post("/generate_video", json={})
    assert c.status_code == 200 and int(c.headers["x-seed"]) >= 0


def test_generate_videos_json(client):
    r = client.post("/generate_videos", json={"count": 3, "seed": 10, "format": "gif", "scale": 1, "fps": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "3balls" and body["format"] == "gif" and [v["seed"] for v in body["videos"]] == [10, 11, 12]
    one = client.post("/generate_video", json={"seed": 11, "scale": 1, "fps": 5})
    assert base64.b64decode(body["videos"][1]["data"]) == one.content  # seed s is the same video everywhere
    mses = [v["mse"] for v in body["videos"]]
    assert body["mse_mean"] == pytest.approx(np.mean(mses)) and body["mse_std"] == pytest.approx(np.std(mses))
    assert all(len(v["balls_per_frame"]) == 30 and v["media_type"] == "image/gif" for v in body["videos"])
    assert all(len(v["centres"]) == 30 for v in body["videos"])
    for v in body["videos"]:  # a tracked frame holds one [x, y] per ball, exactly where the count says 3
        assert [bool(c) for c in v["centres"]] == [n == 3 for n in v["balls_per_frame"]]
        assert all(len(c) == 3 and all(0 <= x <= 30 and 0 <= y <= 30 for x, y in c) for c in v["centres"] if c)
    assert all(0 <= v["teleport_rate"] <= 1 and 0 <= v["unexplained_rate"] <= 1 for v in body["videos"])
    assert client.post("/generate_videos", json={"count": 1, "model": "1ball-swap"}).json()["model"] == "1ball-swap"


def test_generate_frame_from_seed_or_z(client):
    r = client.post("/generate_frame", json={"seed": 4, "scale": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (90, 90)
    z = latent_from_seed(4, 100).tolist()
    assert client.post("/generate_frame", json={"z": z, "scale": 3}).content == r.content


def test_models_lists_the_manifest(client):
    body = client.post("/models").json()
    assert body["default"] == "3balls" and set(body["variants"]) == {"3balls", "1ball-swap"}
    assert body["variants"]["1ball-swap"]["frames_balls"] == 1


BAD = [
    ("/generate_video", {"model": "nope"}, "model"),
    ("/generate_video", {"format": "avi"}, "format"),
    ("/generate_video", {"fps": 0}, "fps"),
    ("/generate_video", {"fps": 61}, "fps"),
    ("/generate_video", {"scale": 17}, "scale"),
    ("/generate_video", {"seed": -1}, "seed"),
    ("/generate_video", {"seed": "abc"}, "seed"),
    ("/generate_videos", {"count": 0}, "count"),
    ("/generate_videos", {"count": 65}, "count"),
    ("/generate_videos", {"seed": 2**63 - 2, "count": 8}, "seed"),
    ("/generate_frame", {"z": [0.0] * 99}, "z"),
    ("/generate_frame", {"z": [0.0] * 99 + ["NaN"]}, "z"),
    ("/generate_frame", {"seed": 1, "z": [0.0] * 100}, "z"),
    ("/generate_frame", {"model": "nope"}, "model"),
    # strict types: numbers are JSON numbers, and z stays where G_F is defined
    ("/generate_video", {"seed": True}, "seed"),
    ("/generate_video", {"seed": "7"}, "seed"),
    ("/generate_video", {"scale": 2.0}, "scale"),
    ("/generate_video", {"format": 1}, "format"),
    ("/generate_videos", {"count": "3"}, "count"),
    ("/generate_frame", {"z": [0.0] * 99 + [1e39]}, "z.99"),
    ("/generate_frame", {"z": [0.0] * 99 + [3e38]}, "z.99"),
    ("/generate_frame", {"z": [0.0] * 99 + [True]}, "z.99"),
]


@pytest.mark.parametrize("route,body,field", BAD)
def test_bad_requests_get_400_naming_the_field(client, route, body, field):
    r = client.post(route, content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert field in r.text
    assert client.get("/readyz").status_code == 200  # and the service stays up


@pytest.mark.parametrize("media", ["multipart/form-data", "application/vnd.bentoml+pickle", "text/plain"])
def test_other_media_types_get_415_with_or_without_a_body(client, media):
    for body in (b"", b"x=1"):
        r = client.post("/models", content=body, headers={"content-type": media})
        assert r.status_code == 415 and set(r.json()) == {"error", "field"} and r.json()["field"] == "content-type"
    assert client.post("/models").status_code == 200  # no body and no media type: fine


def test_nan_literal_and_non_json_bodies(client):
    nan = "[" + ", ".join(["0.0"] * 99 + ["NaN"]) + "]"
    r = client.post("/generate_frame", content='{"z": ' + nan + "}", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "finite" in r.text
    r = client.post("/generate_video", content=b"not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "json" in r.text.lower()


def test_ort_thread_settings_come_from_the_environment(monkeypatch, smoke_models):
    from inference.models import SPIN_ENV, THREADS_ENV, session_options

    def spinning() -> str:
        return session_options().get_session_config_entry("session.intra_op.allow_spinning")

    monkeypatch.delenv(SPIN_ENV, raising=False)
    assert spinning() == "0"  # idle threads sleep: the cores they would spin on encode
    monkeypatch.setenv(SPIN_ENV, "1")
    monkeypatch.setenv(THREADS_ENV, "1")
    assert spinning() == "1" and session_options().intra_op_num_threads == 1
    variants, default = load_variants(smoke_models)  # sessions made with those settings still run
    assert variants[default].generate_videos(np.zeros((2, variants[default].latent), np.float32)).shape[0] == 2
    monkeypatch.setenv(SPIN_ENV, "yes")
    with pytest.raises(ModelError, match="BOUNCING_ORT_SPIN must be 0 or 1"):
        load_variants(smoke_models)


def test_bad_models_folder_is_one_clear_error(tmp_path, smoke_models):
    with pytest.raises(ModelError, match="manifest missing"):
        load_variants(tmp_path)
    for f in smoke_models.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "3balls-video.onnx").write_bytes((smoke_models / "3balls-video.onnx").read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"3balls-video.onnx: not a loadable ONNX model"):
        load_variants(tmp_path)
    (tmp_path / "3balls-video.onnx").unlink()
    with pytest.raises(ModelError, match=r"3balls-video.onnx: model file missing"):
        load_variants(tmp_path)
    (tmp_path / "3balls-video.onnx").write_bytes((smoke_models / "3balls-frames.onnx").read_bytes())
    with pytest.raises(ModelError, match=r"3balls-video.onnx: wrong shape for a video generator"):
        load_variants(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match="not a valid manifest"):
        load_variants(tmp_path)


def test_service_refuses_to_start_on_a_bad_models_folder(tmp_path):
    code = "import service"
    env = {"PATH": "", MODELS_ENV: str(tmp_path), "PYTHONPATH": "."}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == f"cannot start: {tmp_path}/manifest.json: manifest missing " \
        "(export models with `python -m export`)"  # fmt: skip


def test_service_never_imports_torch(smoke_models):
    code = "import sys, service; bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]; " \
           "assert not bad, bad"  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True, env={MODELS_ENV: str(smoke_models), "PATH": ""})


def _broken(kind: str, folder, smoke_models) -> str:
    """Copy the smoke models into folder and break them one way; the file the error must name."""
    for f in smoke_models.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    video = folder / "3balls-video.onnx"
    if kind == "missing":
        video.unlink()
    elif kind == "truncated":
        video.write_bytes(video.read_bytes()[:5000])
    elif kind == "wrong-shape":
        video.write_bytes((folder / "3balls-frames.onnx").read_bytes())
    elif kind == "other-weights":  # a valid frame generator of the right shape, but another variant's
        (folder / "3balls-frames.onnx").write_bytes((folder / "1ball-swap-frames.onnx").read_bytes())
        return "3balls-frames.onnx: sha256"
    elif kind == "manifest-names-another-file":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["variants"]["3balls"]["files"]["video"]["file"] = "renamed.onnx"
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return "renamed.onnx: model file missing"
    return {"missing": "3balls-video.onnx: model file missing", "truncated": "3balls-video.onnx: not a loadable",
            "wrong-shape": "3balls-video.onnx: wrong shape"}[kind]  # fmt: skip


@pytest.mark.parametrize(
    "kind", ["missing", "truncated", "wrong-shape", "manifest-names-another-file", "other-weights"]
)
def test_service_start_fails_with_one_line_per_model_fault(tmp_path, smoke_models, kind):
    expected = _broken(kind, tmp_path, smoke_models)
    env = {"PATH": "", MODELS_ENV: str(tmp_path), "PYTHONPATH": "."}
    done = subprocess.run([sys.executable, "-c", "import service"], capture_output=True, text=True, env=env)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cannot start: {tmp_path}/") and expected in last, done.stderr[-2000:]
    assert "Traceback" not in done.stderr  # one clear line, not a stack


def test_generate_cli_makes_the_services_bytes(client, smoke_models, tmp_path, capsys):
    from inference.generate import main as generate

    base = ["--models", str(smoke_models)]
    generate([*base, "--seed", "7", "--format", "mp4", "--scale", "2", "-o", str(tmp_path / "v.mp4")])
    served = client.post("/generate_video", json={"seed": 7, "format": "mp4", "scale": 2})
    assert (tmp_path / "v.mp4").read_bytes() == served.content
    generate([*base, "--seed", "4", "--frame", "--scale", "3", "-o", str(tmp_path / "f.png")])
    assert (tmp_path / "f.png").read_bytes() == client.post("/generate_frame", json={"seed": 4, "scale": 3}).content
    generate([*base, "--seed", "10", "--count", "3", "--scale", "1", "--fps", "5", "--model", "1ball-swap",
              "-o", str(tmp_path / "many")])  # fmt: skip
    summary = json.loads((tmp_path / "many" / "metrics.json").read_text())
    api = client.post("/generate_videos", json={"count": 3, "seed": 10, "scale": 1, "fps": 5, "model": "1ball-swap"})
    for row, video in zip(summary["videos"], api.json()["videos"], strict=True):
        assert (tmp_path / "many" / row["file"]).read_bytes() == base64.b64decode(video["data"])
        assert row["mse"] == pytest.approx(video["mse"]) and row["teleport_rate"] == video["teleport_rate"]
    captured = capsys.readouterr()
    assert "3/3 videos" in captured.err and "wrote 3 videos" in captured.out
    with pytest.raises(SystemExit):
        generate([*base, "--model", "nope", "-o", str(tmp_path / "x.gif")])
