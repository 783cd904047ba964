"""GIF and MP4 encoding time per video, scale 1 and 4: the service's PyAV path against the
alternatives (an ffmpeg subprocess, Pillow, the earlier RGB-input PyAV MP4), each checked for correctness
by decoding it back (GIF: every frame exact and 30 of them; MP4: 30 frames, mean error < 2 levels).
Run: python benchmarks/encoding.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from balls.pixels import to_pixels, upscale  # noqa: E402
from inference.media import encode_gif, encode_mp4  # noqa: E402
from inference.models import latent_from_seed, load_variants  # noqa: E402


def ffmpeg_exe() -> str | None:
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return None


def ffmpeg_subprocess(fmt: str):
    exe = ffmpeg_exe()
    if exe is None:
        return None

    def encode(px: np.ndarray, fps: int, scale: int) -> bytes:
        px = upscale(px, scale)
        t, h, w = px.shape
        args = [exe, "-v", "error", "-f", "rawvideo", "-pix_fmt", "gray", "-s", f"{w}x{h}", "-r", str(fps), "-i", "-"]
        if fmt == "gif":
            args += ["-f", "gif", "-"]
        else:
            args += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "10", "-preset", "veryfast",
                     "-movflags", "frag_keyframe+empty_moov", "-f", "mp4", "-"]  # fmt: skip
        return subprocess.run(args, input=px.tobytes(), capture_output=True, check=True).stdout

    return encode


def pillow_gif(px: np.ndarray, fps: int, scale: int) -> bytes:
    frames = [Image.fromarray(f) for f in upscale(px, scale)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=round(1000 / fps), loop=0)
    return buf.getvalue()


def pyav_mp4_rgb(px: np.ndarray, fps: int, scale: int) -> bytes:
    """The service's encode_mp4 before 2026-11-25: RGB frames (a 3-channel copy per frame)."""
    px = upscale(px, scale)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = px.shape[-1], px.shape[-2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast", "threads": "1", "bf": "0"}
        for f in px:
            rgb = np.repeat(f[:, :, None], 3, axis=2)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data)) as container:
        return np.stack([f.to_ndarray(format="gray") for f in container.decode(video=0)])


def correct(fmt: str, data: bytes, px: np.ndarray, scale: int) -> bool:
    frames = decode(data)
    if frames.shape != (30, 30 * scale, 30 * scale):
        return False
    diff = np.abs(frames.astype(int) - upscale(px, scale).astype(int))
    return bool(diff.max() == 0) if fmt == "gif" else bool(diff.mean() < 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed passes over the videos; medians reported")
    parser.add_argument("--videos", type=int, default=8, help="generated videos encoded per pass")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    variants, default = load_variants(ROOT / "models")
    z = np.stack([latent_from_seed(s, variants[default].latent) for s in range(args.videos)])
    videos = to_pixels(variants[default].generate_videos(z))
    still = np.repeat(videos[:1, :1], 30, axis=1)[0]  # a video that rests: identical frames

    encoders = {
        ("gif", "PyAV in-process (service)"): encode_gif,
        ("gif", "ffmpeg subprocess"): ffmpeg_subprocess("gif"),
        ("gif", "Pillow"): pillow_gif,
        ("mp4", "PyAV in-process, gray frames (service)"): encode_mp4,
        ("mp4", "PyAV in-process, RGB frames (before)"): pyav_mp4_rgb,
        ("mp4", "ffmpeg subprocess"): ffmpeg_subprocess("mp4"),
    }
    results = []
    for (fmt, label), encode in encoders.items():
        if encode is None:
            continue
        for scale in (1, 4):
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                outputs = [encode(v, 10, scale) for v in videos]
                times.append((time.perf_counter() - t0) / len(videos))
            ok = all(correct(fmt, o, v, scale) for o, v in zip(outputs, videos, strict=True))
            ok_still = correct(fmt, encode(still, 10, scale), still, scale)
            ms = statistics.median(times) * 1e3
            results.append({"format": fmt, "encoder": label, "scale": scale, "ms_per_video": ms,
                            "kb_per_video": statistics.mean(len(o) for o in outputs) / 1024,
                            "correct": ok and ok_still, "correct_on_a_still_video": ok_still})  # fmt: skip
    print(f"{'format':<6} {'encoder':<40} {'scale':>5} {'ms/video':>9} {'KB':>7}  correct")
    for r in results:
        note = "yes" if r["correct"] else ("no: drops identical frames" if not r["correct_on_a_still_video"] else "no")
        print(f"{r['format']:<6} {r['encoder']:<40} {r['scale']:>5} {r['ms_per_video']:9.2f} {r['kb_per_video']:7.1f}  "
              f"{note}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
