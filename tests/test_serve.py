"""The real `bentoml serve` on the shipped models/, over HTTP; videos decoded by independent decoders."""

import base64
import io
import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from balls.metrics import consecutive_frame_mse
from tests.conftest import ROOT, env_with, free_port
from tests.serving import bentoml_serve, decode_gif

BENTOML = str(Path(sys.executable).with_name("bentoml"))
SCALE = 4


@pytest.fixture(scope="module")
def server():
    env = env_with(BOUNCING_MODELS_DIR=str(ROOT / "models"))
    with bentoml_serve(BENTOML, ROOT, free_port(), env) as url:
        yield url


def decode_mp4(data: bytes, tmp_path: Path) -> np.ndarray:
    """The ffmpeg binary of imageio-ffmpeg (the service encodes MP4s with PyAV's own FFmpeg libraries)."""
    src = tmp_path / "v.mp4"
    src.write_bytes(data)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(src), "-f", "rawvideo", "-pix_fmt", "gray", "-"]
    raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    side = 30 * SCALE
    return np.frombuffer(raw, dtype=np.uint8).reshape(-1, side, side)


def to_frames(pixels: np.ndarray) -> np.ndarray:
    """Decoded (T, 30s, 30s) uint8 -> (T, 30, 30) in [-1, 1]: the mean of each s x s block."""
    t = pixels.shape[0]
    blocks = pixels.reshape(t, 30, SCALE, 30, SCALE).astype(np.float64).mean(axis=(2, 4))
    return blocks / 127.5 - 1.0


def post(url: str, route: str, body: dict) -> httpx.Response:
    return httpx.post(f"{url}{route}", json=body, timeout=60)


def test_gif_over_http_decodes_to_the_reported_metric(server):
    r = post(server, "/generate_video", {"seed": 21, "format": "gif", "scale": SCALE})
    assert r.status_code == 200 and r.headers["content-type"] == "image/gif"
    frames = decode_gif(r.content)
    assert frames.shape == (30, 120, 120)
    assert np.ptp(frames.reshape(30, 30, SCALE, 30, SCALE), axis=(2, 4)).max() == 0  # clean upscaling
    recomputed = consecutive_frame_mse(to_frames(frames))
    assert recomputed == pytest.approx(float(r.headers["x-consecutive-frame-mse"]), abs=1e-5)


def test_mp4_over_http_decodes_close_to_the_gif(server, tmp_path):
    gif = decode_gif(post(server, "/generate_video", {"seed": 22, "scale": SCALE}).content).astype(int)
    r = post(server, "/generate_video", {"seed": 22, "format": "mp4", "scale": SCALE, "fps": 25})
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    frames = decode_mp4(r.content, tmp_path)
    assert frames.shape == (30, 120, 120)
    assert np.abs(frames.astype(int) - gif).mean() < 2.0  # near-lossless H.264 of the same frames
    # the metric from the decoded MP4: pixels far from the threshold cannot flip
    original = to_frames(gif.astype(np.uint8))
    decoded = to_frames(frames)
    safe = np.abs(original) > 0.1
    assert ((decoded > 0) == (original > 0))[safe].all()


def test_every_endpoint_over_http(server):
    body = post(server, "/generate_videos", {"count": 3, "seed": 30, "scale": 1}).json()
    assert [v["seed"] for v in body["videos"]] == [30, 31, 32]
    decoded = [to_frames_scale1(decode_gif(base64.b64decode(v["data"]))) for v in body["videos"]]
    for v, frames in zip(body["videos"], decoded, strict=True):
        assert consecutive_frame_mse(frames) == pytest.approx(v["mse"], abs=1e-5)
    png = post(server, "/generate_frame", {"seed": 5, "scale": 2})
    assert png.status_code == 200 and Image.open(io.BytesIO(png.content)).size == (60, 60)
    models = post(server, "/models", {}).json()
    assert models["default"] in models["variants"]
    bad = post(server, "/generate_videos", {"count": 65})
    assert bad.status_code == 400 and "count" in bad.text
    assert httpx.get(f"{server}/readyz").status_code == 200


def to_frames_scale1(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) / 127.5 - 1.0


def test_concurrent_requests_share_onnx_runs(server):
    def metrics() -> tuple[float, float]:
        text = httpx.get(f"{server}/metrics").text
        values = {}
        for line in text.splitlines():
            if line.startswith(("bouncing_batch_videos_sum", "bouncing_batch_videos_count")):
                values[line.split("{")[0].split(" ")[0].rsplit("_", 1)[1]] = float(line.rsplit(" ", 1)[1])
        return values.get("sum", 0.0), values.get("count", 0.0)

    before = metrics()
    start = threading.Barrier(16)  # the 16 requests leave together, so that they overlap in the server

    def request(seed: int) -> httpx.Response:
        start.wait()
        return post(server, "/generate_video", {"seed": seed, "scale": 1})

    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(request, range(100, 116)))
    assert all(r.status_code == 200 for r in responses)
    after = metrics()
    rows, calls = after[0] - before[0], after[1] - before[1]
    assert rows == 16 and calls < 16  # at least one ONNX run served several requests
    # batching changes nothing: a video is the same whichever batch it was computed in
    alone = post(server, "/generate_video", {"seed": 105, "scale": 1})
    assert alone.content == responses[5].content
    print(json.dumps({"requests": 16, "onnx_runs": calls}))


def test_metrics_time_requests_generation_encoding_and_measure_the_videos(server):
    def series(text: str, name: str) -> dict[str, float]:
        return {line.split(" ")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                if line.startswith(name)}  # fmt: skip

    before = httpx.get(f"{server}/metrics").text
    assert post(server, "/generate_video", {"seed": 3, "scale": 1, "format": "mp4"}).status_code == 200
    assert post(server, "/generate_videos", {"seed": 3, "count": 2, "scale": 1}).status_code == 200
    assert post(server, "/generate_frame", {"seed": 3}).status_code == 200
    after = httpx.get(f"{server}/metrics").text

    def grew(name: str, by: float) -> None:
        old, new = series(before, name), series(after, name)
        assert new, f"{name} missing from /metrics"
        assert sum(new.values()) - sum(old.values()) == by, name

    grew('bouncing_request_seconds_count{endpoint="generate_video",format="mp4"}', 1)
    grew('bouncing_request_seconds_count{endpoint="generate_videos",format="gif"}', 1)
    grew('bouncing_request_seconds_count{endpoint="generate_frame",format="png"}', 1)
    grew('bouncing_encode_seconds_count{format="mp4"}', 1)
    grew('bouncing_encode_seconds_count{format="gif"}', 2)
    grew('bouncing_encode_seconds_count{format="png"}', 1)
    grew('bouncing_video_mse_count{model="3balls"}', 3)
    grew('bouncing_video_teleport_rate_count{model="3balls"}', 2)
    assert sum(series(after, 'bouncing_generate_seconds_count{model="3balls"}').values()) >= 2
    for reason in ("queue_full", "body_deadline", "gallery_busy"):
        assert f'bouncing_shed_total{{reason="{reason}"}}' in after


def test_bentomls_own_clients_get_every_answer(server, tmp_path):
    """bentoml.SyncHTTPClient and AsyncHTTPClient: files come back as files (decoded here), JSON as dicts."""
    import asyncio

    import bentoml

    with bentoml.SyncHTTPClient(server) as client:
        gif = client.generate_video(seed=7, scale=2)
        mp4 = client.generate_video(seed=7, format="mp4", scale=SCALE)
        png = client.generate_frame(seed=7, scale=3)
        videos = client.generate_videos(count=2, seed=7, scale=1)
        models = client.models()
        with pytest.raises(bentoml.exceptions.BentoMLException) as bad:
            client.generate_video(seed=7, model="nope")
    assert Path(gif).suffix == ".gif" and decode_gif(Path(gif).read_bytes()).shape == (30, 60, 60)
    raw = post(server, "/generate_video", {"seed": 7, "scale": 2}).content
    assert Path(gif).read_bytes() == raw  # the same file as over plain HTTP
    assert decode_mp4(Path(mp4).read_bytes(), tmp_path).shape == (30, 30 * SCALE, 30 * SCALE)
    assert Image.open(png).size == (90, 90)
    assert [v["seed"] for v in videos["videos"]] == [7, 8] and models["default"] in models["variants"]
    assert "unknown model" in str(bad.value)

    async def async_calls():
        async with bentoml.AsyncHTTPClient(server) as client:
            return await client.generate_video(seed=7, scale=2), await client.generate_frame(seed=7, scale=3)

    a_gif, a_png = asyncio.run(async_calls())
    assert Path(a_gif).read_bytes() == raw and Path(a_png).read_bytes() == Path(png).read_bytes()


def test_openapi_document_describes_every_answer(server):
    spec = httpx.get(f"{server}/docs.json", timeout=10).json()
    paths = spec["paths"]
    video = paths["/generate_video"]["post"]["responses"]
    assert set(video["200"]["content"]) == {"image/gif", "video/mp4"}
    assert "X-Consecutive-Frame-MSE" in video["200"]["headers"]
    assert set(paths["/generate_frame"]["post"]["responses"]["200"]["content"]) == {"image/png"}
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"] and "field" in error["properties"]
    for api in ("/generate_video", "/generate_videos", "/generate_frame", "/models"):
        responses = paths[api]["post"]["responses"]
        assert {"400", "413", "415", "429", "503", "504"} <= set(responses)
        assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    # the real 400 body has the documented shape
    body = post(server, "/generate_video", {"seed": "abc"}).json()
    assert set(body) <= set(error["properties"]) and {"error", "field"} <= set(body)
    assert "/gallery/" in spec["info"]["description"]
    page = httpx.get(f"{server}/", timeout=10)  # the Swagger UI, which shows that description
    assert page.status_code == 200 and "swagger" in page.text.lower()


def test_shipped_variants_share_one_sequence_generator():
    """The paper's swap: 1ball-swap is the 3balls G_V, unchanged, over another G_F (same z_F path)."""
    import onnxruntime as ort

    z = np.random.default_rng(0).standard_normal((5, 100)).astype(np.float32)
    paths = [ort.InferenceSession(str(ROOT / "models" / f"{v}-video.onnx")).run(["z_frames"], {"z": z})[0]
             for v in ("3balls", "1ball-swap")]  # fmt: skip
    np.testing.assert_array_equal(paths[0], paths[1])
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text())["variants"]
    assert manifest["3balls"]["sources"]["video_checkpoint"] == manifest["1ball-swap"]["sources"]["video_checkpoint"]
    assert manifest["1ball-swap"]["frames_balls"] == 1 and manifest["3balls"]["frames_balls"] == 3
