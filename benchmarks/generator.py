"""The shipped video generator (z_v -> 30 frames): ONNX Runtime vs the same weights in PyTorch eager,
against this CPU's FLOP floor; and what ONNX Runtime's options give.

FLOPs are counted from the ONNX graph as trained (shapes from running it at batch 1): 2 x the
multiply-adds of MatMul/Gemm, ConvTranspose/Conv and LSTM; elementwise ops are not counted. The
attainable rate is the best of a large float32 matmul in numpy and in torch on the same threads.
Run: python benchmarks/generator.py [--repeats 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.models import load_variants  # noqa: E402

BATCHES = (1, 8, 32)


def rate(fn, batch: int, repeats: int, min_time: float = 0.5) -> float:
    """Median over ``repeats`` of videos/s, each repeat running ``fn`` for at least ``min_time`` s."""
    fn()  # warm up
    return statistics.median(window(fn, batch, min_time) for _ in range(repeats))


def window(fn, batch: int, min_time: float) -> float:
    n, t0 = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < min_time or n < 2:
        fn()
        n += 1
    return n * batch / elapsed


def interleaved(candidates: dict[str, tuple], repeats: int, min_time: float = 0.4) -> dict[str, float]:
    """Median videos/s of each (fn, batch), measured in rounds that visit every candidate once:
    a machine whose speed drifts (shared hosts do) shifts all candidates alike."""
    for fn, _ in candidates.values():
        fn()  # warm up
    rates: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(repeats):
        for label, (fn, batch) in candidates.items():
            rates[label].append(window(fn, batch, min_time))
            time.sleep(0.1)  # let the last candidate's threads go idle
    return {k: statistics.median(v) for k, v in rates.items()}


def graph_flops(path: Path, latent: int) -> dict[str, float]:
    """FLOPs of one video (batch 1) by op type. Shapes come from running the graph once in ONNX
    Runtime with every intermediate tensor as an output (static inference cannot see through the
    Reshape between G_V and G_F)."""
    model = onnx.load(str(path))
    known = {o.name for o in model.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in known:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                known.add(name)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    z = np.zeros((1, latent), dtype=np.float32)
    names = [o.name for o in sess.get_outputs()]
    shapes = {n: list(v.shape) for n, v in zip(names, sess.run(names, {sess.get_inputs()[0].name: z}), strict=True)}
    shapes[model.graph.input[0].name] = [1, latent]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    flops: dict[str, float] = {}
    for node in model.graph.node:
        op, f = node.op_type, 0.0
        if op in ("MatMul", "Gemm"):
            a, b = shapes[node.input[0]], shapes[node.input[1]]
            f = 2.0 * np.prod(a) * b[-1]  # (..., K) x (K, N): 2 x rows x K x N
        elif op in ("ConvTranspose", "Conv"):
            w = shapes[node.input[1]]  # ConvTranspose: (Cin, Cout/g, k, k); Conv: (Cout, Cin/g, k, k)
            x, y = shapes[node.input[0]], shapes[node.output[0]]
            f = 2.0 * np.prod(x) * np.prod(w[1:]) if op == "ConvTranspose" else 2.0 * np.prod(y) * np.prod(w[1:])
        elif op == "LSTM":
            x, w, r = shapes[node.input[0]], shapes[node.input[1]], shapes[node.input[2]]
            steps, batch = x[0], x[1]
            f = 2.0 * steps * batch * w[0] * (np.prod(w[1:]) + np.prod(r[1:]))  # directions x 4H x (I + H)
        if f:
            flops[op] = flops.get(op, 0.0) + float(f)
    return flops


def attainable_flops(threads: int, repeats: int) -> dict[str, float]:
    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    out = {"numpy": 2.0 * n**3 * rate(lambda: a @ a, 1, repeats, 1.0)}
    try:
        import torch

        torch.set_num_threads(threads)
        t = torch.from_numpy(a)
        out["torch"] = 2.0 * n**3 * rate(lambda: torch.mm(t, t), 1, repeats, 1.0)
    except ImportError:
        pass
    return out


def session(
    path: Path, level: ort.GraphOptimizationLevel, threads: int, save_to: Path | None = None, spin: bool = True
):
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.graph_optimization_level = level
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    if save_to is not None:
        opts.optimized_model_filepath = str(save_to)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def matmul_deconv_video(entry: dict, path: Path):
    """The same video generator with every ConvTranspose rewritten as one MatMul over all frames and
    positions plus an overlap-add (pads and adds), channels-last throughout, exported to ``path``;
    returns the max |difference| to the shipped graph's frames, or None without torch/checkpoints."""
    loaded = torch_generators(entry)
    if loaded is None:
        return None
    gf, gv = loaded
    import torch
    import torch.nn.functional as F
    from torch import nn

    from training.networks import VideoGenerator

    class MatMulFrames(nn.Module):
        def __init__(self, gf):
            super().__init__()
            self.width, self.fc = gf.width, gf.fc
            convs = [m for m in gf.body if isinstance(m, nn.ConvTranspose2d)]
            norms = [gf.bn0, *(m for m in gf.body if isinstance(m, nn.BatchNorm2d))]
            self.pads = [c.padding[0] for c in convs]
            for i, c in enumerate(convs):  # (Cin, Cout, 4, 4) -> (Cin, [dy, dx, a, b], Cout) with k = 2 d + a
                cin, cout = c.weight.shape[:2]
                w = c.weight.detach().view(cin, cout, 2, 2, 2, 2).permute(0, 2, 4, 3, 5, 1).reshape(cin, 16 * cout)
                self.register_buffer(f"w{i}", w.contiguous())
            for i, bn in enumerate(norms):
                scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach()
                self.register_buffer(f"s{i}", scale)
                self.register_buffer(f"b{i}", (bn.bias - bn.running_mean * scale).detach())
            self.register_buffer("bias", convs[-1].bias.detach().clone())

        @staticmethod
        def deconv(x, w, pad):
            n, h, wd, cin = x.shape
            cout = w.shape[1] // 16
            cols = (x.reshape(n * h * wd, cin) @ w).view(n, h, wd, 2, 2, 2, 2, cout)
            out = None
            for dy in (0, 1):
                for dx in (0, 1):
                    q = F.pad(cols[:, :, :, dy, dx], (0, 0, 0, 0, 0, 0, dx, 1 - dx, dy, 1 - dy))
                    out = q if out is None else out + q
            full = out.permute(0, 1, 3, 2, 4, 5).reshape(n, 2 * h + 2, 2 * wd + 2, cout)
            return full[:, pad : 2 * h + 2 - pad, pad : 2 * wd + 2 - pad]

        def forward(self, z):
            h = F.relu(self.fc(z).view(-1, self.width, 2, 2).permute(0, 2, 3, 1) * self.s0 + self.b0)
            for i, pad in enumerate(self.pads):
                h = self.deconv(h, getattr(self, f"w{i}"), pad)
                h = F.relu(h * getattr(self, f"s{i + 1}") + getattr(self, f"b{i + 1}")) if i < 3 else h
            return torch.tanh(h + self.bias).permute(0, 3, 1, 2)

    model = VideoGenerator(gv, MatMulFrames(gf)).eval()
    z = torch.randn(3, entry["latent"])
    with torch.no_grad():
        diff = (model(z)[0] - VideoGenerator(gv, gf).eval()(z)[0]).abs().max().item()
        torch.onnx.export(model, (z,), str(path), input_names=["z"], output_names=["video", "z_frames"],
                          dynamic_axes={"z": {0: "batch"}, "video": {0: "batch"}, "z_frames": {0: "batch"}},
                          opset_version=17, dynamo=False)  # fmt: skip
    return diff


def plain_video(entry: dict, path: Path):
    """The same video generator exported without export/subpixel.py's rewrite (G_F's ConvTranspose
    layers and batch norms as trained) to ``path``; True, or None without torch/checkpoints."""
    loaded = torch_generators(entry)
    if loaded is None:
        return None
    from export.onnx_export import _export
    from training.networks import VideoGenerator

    _export(VideoGenerator(loaded[1], loaded[0]).eval(), entry["latent"], ["video", "z_frames"], path)
    return True


def torch_generators(entry: dict):
    """(G_F, G_V) in PyTorch from the checkpoints the manifest names; None without torch or them."""
    try:
        from training.build import load_frame_generator, load_sequence_generator
    except ImportError:
        return None
    sources = entry["sources"]
    frames, video = ROOT / sources["frames_checkpoint"]["path"], ROOT / sources["video_checkpoint"]["path"]
    if not (frames.is_file() and video.is_file()):
        return None
    return load_frame_generator(frames)[0], load_sequence_generator(video)[0]


def torch_generator(entry: dict):
    """The same weights in PyTorch eager: a function z -> videos (None if unavailable)."""
    loaded = torch_generators(entry)
    if loaded is None:
        return None
    import torch

    from training.networks import VideoGenerator

    model = VideoGenerator(loaded[1], loaded[0]).eval()

    def run(z: np.ndarray):
        with torch.inference_mode():
            return model(torch.from_numpy(z))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds over all candidates; medians reported")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 4), help="intra-op threads")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()

    variants, default = load_variants(ROOT / "models")
    variant = variants[default]
    path = ROOT / "models" / variant.entry["files"]["video"]["file"]
    rng = np.random.default_rng(0)
    z = {b: rng.standard_normal((b, variant.latent), dtype=np.float32) for b in BATCHES}

    # FLOPs of the model's math: the graph as trained (the shipped file's sub-pixel convolutions
    # compute a few structural zeros more at the borders, which are not counted as work)
    plain = Path(tempfile.mkdtemp()) / "plain.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        has_plain = plain_video(variant.entry, plain)
    flops = graph_flops(plain if has_plain else path, variant.latent)
    per_video = sum(flops.values())
    peak = attainable_flops(args.threads, args.repeats)
    floor_rate = max(peak.values())

    all_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    base = session(path, all_level, args.threads)
    name = base.get_inputs()[0].name
    result = {"variant": default, "threads": args.threads, "repeats": args.repeats,
              "flops_per_video": per_video, "flops_by_op": flops, "attainable_flops_per_s": peak,
              "onnxruntime": {}, "pytorch_eager": {}, "onnxruntime_options": {}}  # fmt: skip
    torch_run = torch_generator(variant.entry)
    if torch_run is not None:
        import torch

        torch.set_num_threads(args.threads)

    def runner(s):
        return lambda b: lambda: s.run(["video"], {name: z[b]})

    candidates = {}
    for b in BATCHES:
        candidates[f"ort {b}"] = (runner(base)(b), b)
        if torch_run is not None:
            candidates[f"torch {b}"] = ((lambda b=b: torch_run(z[b])), b)
    options = {
        "no graph optimisation": (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, args.threads),
        "basic": (ort.GraphOptimizationLevel.ORT_ENABLE_BASIC, args.threads),
        "extended": (ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, args.threads),
        "all, 1 thread": (all_level, 1),
    }
    with tempfile.TemporaryDirectory() as tmp:  # the optimised graph saved at export, loaded as-is
        saved = Path(tmp) / "optimised.onnx"
        t0 = time.perf_counter()
        session(path, all_level, args.threads, save_to=saved)
        load_plain = time.perf_counter() - t0
        t0 = time.perf_counter()
        pre = session(saved, ort.GraphOptimizationLevel.ORT_DISABLE_ALL, args.threads)
        load_saved = time.perf_counter() - t0
        result["session_load_s"] = {"optimising at load": load_plain, "pre-optimised file": load_saved}
        sessions = {label: session(path, level, threads) for label, (level, threads) in options.items()}
        asleep = "all, idle threads sleep (the service: its cores also encode)"
        sessions[asleep] = session(path, all_level, args.threads, spin=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rewritten = Path(tmp) / "matmul.onnx"
            diff = matmul_deconv_video(variant.entry, rewritten)
            if has_plain:
                sessions["ConvTranspose as trained (no sub-pixel rewrite)"] = session(plain, all_level, args.threads)
        if diff is not None:
            sessions["ConvTranspose as MatMul + overlap-add"] = session(rewritten, all_level, args.threads)
            result["matmul_rewrite_max_abs_diff"] = diff
        sessions["pre-optimised file"] = pre
        for label, s in sessions.items():
            for b in (1, 32):
                candidates[f"{label} {b}"] = (runner(s)(b), b)
        measured = interleaved(candidates, args.repeats)
    for b in BATCHES:
        ort_rate = measured[f"ort {b}"]
        achieved = ort_rate * per_video
        result["onnxruntime"][b] = {"videos_per_s": ort_rate, "flops_per_s": achieved,
                                    "fraction_of_attainable": achieved / floor_rate}  # fmt: skip
        if torch_run is not None:
            result["pytorch_eager"][b] = {"videos_per_s": measured[f"torch {b}"]}
    spinning = "all, spinning (ONNX Runtime's default: the table above)"
    result["onnxruntime_options"][spinning] = {b: measured[f"ort {b}"] for b in (1, 32)}
    for label in sessions:
        result["onnxruntime_options"][label] = {b: measured[f"{label} {b}"] for b in (1, 32)}
    plain_label = "ConvTranspose as trained (no sub-pixel rewrite)"
    if plain_label in sessions:
        result["subpixel_speedup"] = {b: measured[f"ort {b}"] / measured[f"{plain_label} {b}"] for b in (1, 32)}

    print(f"FLOPs per video (ONNX graph, batch 1): {per_video / 1e6:.1f} M  "
          f"({', '.join(f'{k} {v / 1e6:.1f} M' for k, v in flops.items())})")  # fmt: skip
    print(f"attainable: {', '.join(f'{k} {v / 1e9:.1f} GFLOP/s' for k, v in peak.items())} ({args.threads} threads)")
    head = ("batch", "ORT videos/s", "torch videos/s", "ORT/torch", "ORT GFLOP/s", "of floor")
    print(" ".join(f"{h:>{w}}" for h, w in zip(head, (5, 13, 15, 9, 12, 8), strict=True)))
    for b in BATCHES:
        o = result["onnxruntime"][b]
        t = result["pytorch_eager"].get(b, {}).get("videos_per_s")
        ratio = f"{o['videos_per_s'] / t:9.2f}" if t else f"{'-':>9}"
        tt = f"{t:15.1f}" if t else f"{'-':>15}"
        print(f"{b:>5} {o['videos_per_s']:13.1f} {tt} {ratio} {o['flops_per_s'] / 1e9:12.2f} "
              f"{o['fraction_of_attainable']:8.1%}")  # fmt: skip
    print("ONNX Runtime options (videos/s at batch 1 / 32):")
    for label, r in result["onnxruntime_options"].items():
        print(f"  {label:<38} {r[1]:8.1f} / {r[32]:8.1f}")
    print(f"session load: {', '.join(f'{k} {v * 1e3:.0f} ms' for k, v in result['session_load_s'].items())}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
