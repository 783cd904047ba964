"""`python -m export`: ONNX files that match PyTorch, the G_F swap, the manifest, and refusals."""

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import onnx_export
from export.onnx_export import ExportError, export_variant, main
from export.subpixel import SubPixelConvTranspose, rewrite
from training.build import load_frame_generator
from training.networks import VideoGenerator


def run_onnx(path, z):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"z": z})


def test_export_writes_checked_models_and_a_manifest(smoke_models, smoke_runs):
    manifest = json.loads((smoke_models / "manifest.json").read_text())
    assert manifest["default"] == "3balls" and set(manifest["variants"]) == {"3balls", "1ball-swap"}
    entry = manifest["variants"]["3balls"]
    assert entry["latent"] == 100 and entry["frames"] == 30 and entry["opset"] == onnx_export.OPSET
    assert entry["trained"] is False and entry["frames_preset"] == "smoke"  # smoke models say so
    assert entry["sources"]["video_checkpoint"]["sha256"] == onnx_export.sha256(smoke_runs["video"])
    # the model card's command lines reproduce the configs (the smoke runs overrode only --steps)
    assert entry["training"]["frames"]["command"] == "python -m training.run --stage frames --preset smoke --steps 2"
    assert entry["training"]["video"]["command"] == "python -m training.run --stage video --preset smoke --steps 2"
    swap = manifest["variants"]["1ball-swap"]["training"]["swapped_frames"]
    assert swap["command"].endswith("--balls 1 --steps 2") and swap["data"]["seed"] == 10
    for kind in ("frames", "video"):
        f = entry["files"][kind]
        path = smoke_models / f["file"]
        assert f["sha256"] == onnx_export.sha256(path) and f["max_abs_diff_vs_torch"] <= 1e-4
        model = onnx.load(str(path))
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["variant"] == "3balls" and meta["model"] == kind and meta["subpixel"] == "true"
        ops = {n.op_type for n in model.graph.node}
        assert "ConvTranspose" not in ops and "DepthToSpace" in ops  # G_F as sub-pixel convolutions
        if kind == "frames":  # the three after transposed convolutions are folded; bn0 after the dense layer stays
            assert [n.op_type for n in model.graph.node].count("BatchNormalization") == 1
        assert model.opset_import[0].version == onnx_export.OPSET
    z = np.random.default_rng(0).standard_normal((17, 100)).astype(np.float32)
    frames = run_onnx(smoke_models / "3balls-frames.onnx", z)[0]
    video, zf = run_onnx(smoke_models / "3balls-video.onnx", z[:5])
    assert frames.shape == (17, 1, 30, 30) and video.shape == (5, 30, 30, 30) and zf.shape == (5, 30, 100)


@pytest.mark.parametrize("padding,side", [(1, 2), (1, 5), (2, 16), (2, 3)])
def test_subpixel_convolution_is_the_transposed_convolution(padding, side):
    torch.manual_seed(padding * 100 + side)
    layer = torch.nn.ConvTranspose2d(6, 5, 4, 2, padding, bias=padding == 2)
    norm = torch.nn.BatchNorm2d(5).eval()
    norm.running_mean.normal_(), norm.running_var.uniform_(0.5, 2), norm.weight.data.normal_(1, 0.3)
    norm.bias.data.normal_()
    x = torch.randn(3, 6, side, side)
    with torch.no_grad():
        torch.testing.assert_close(SubPixelConvTranspose(layer)(x), layer(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(SubPixelConvTranspose(layer, norm)(x), norm(layer(x)), rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="only stride-2"):
        SubPixelConvTranspose(torch.nn.ConvTranspose2d(6, 5, 3, 2, 1))


def test_rewritten_frame_generator_is_the_trained_one(smoke_runs):
    gf, _, _ = load_frame_generator(smoke_runs["frames"])
    fast = rewrite(gf)
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in gf.modules())  # the original is untouched
    assert not any(isinstance(m, torch.nn.ConvTranspose2d | torch.nn.BatchNorm2d) for m in fast.body)
    z = torch.randn(9, 100)
    with torch.no_grad():
        torch.testing.assert_close(fast(z), gf(z), rtol=0, atol=1e-5)


def test_swap_puts_the_other_frame_generator_under_the_same_sequence_generator(smoke_models, smoke_runs):
    entry = json.loads((smoke_models / "manifest.json").read_text())["variants"]["1ball-swap"]
    assert entry["frames_balls"] == 1 and entry["video_balls"] == 3
    z = np.random.default_rng(1).standard_normal((3, 100)).astype(np.float32)
    own_video, own_zf = run_onnx(smoke_models / "3balls-video.onnx", z)
    swap_video, swap_zf = run_onnx(smoke_models / "1ball-swap-video.onnx", z)
    np.testing.assert_allclose(swap_zf, own_zf, atol=1e-6)  # the same path through latent space ...
    gf1, _, _ = load_frame_generator(smoke_runs["frames1"])
    with torch.no_grad():
        expected = gf1(torch.from_numpy(swap_zf.reshape(-1, 100)))[:, 0].view(3, 30, 30, 30).numpy()
    np.testing.assert_allclose(swap_video, expected, atol=1e-4)  # ... drawn by the 1-ball G_F


def test_a_looking_sequence_generator_keeps_its_eye_under_the_swap(smoke_runs, tmp_path):
    from training.run import main as train

    common = ["--preset", "smoke", "--no-progress", "--steps", "2", "--data", "stream", "--stage", "video"]
    train([*common, "--frames-checkpoint", str(smoke_runs["frames"]), "--zf-path", "residual", "--zf-look",
           "--out", str(tmp_path / "run")])  # fmt: skip
    video = tmp_path / "run" / "video" / "latest.pt"
    export_variant(smoke_runs["frames"], video, "3balls", tmp_path / "models")
    export_variant(smoke_runs["frames"], video, "1ball-swap", tmp_path / "models", swap_frames=smoke_runs["frames1"])
    z = np.random.default_rng(2).standard_normal((3, 100)).astype(np.float32)
    own_video, own_zf = run_onnx(tmp_path / "models" / "3balls-video.onnx", z)
    swap_video, swap_zf = run_onnx(tmp_path / "models" / "1ball-swap-video.onnx", z)
    # G_V sees its path through the G_F it was trained over in both files: the same path, two renderings
    np.testing.assert_allclose(swap_zf, own_zf, atol=1e-5)
    gf1, _, _ = load_frame_generator(smoke_runs["frames1"])
    with torch.no_grad():
        expected = gf1(torch.from_numpy(swap_zf.reshape(-1, 100)))[:, 0].view(3, 30, 30, 30).numpy()
    np.testing.assert_allclose(swap_video, expected, atol=1e-4)
    gf3, _, _ = load_frame_generator(smoke_runs["frames"])
    with torch.no_grad():
        drawn = gf3(torch.from_numpy(own_zf.reshape(-1, 100)))[:, 0].view(3, 30, 30, 30).numpy()
    np.testing.assert_allclose(own_video, drawn, atol=1e-4)


def test_a_g_f_with_folds_exports_with_parity(smoke_runs, tmp_path):
    from training.run import main as train

    common = ["--preset", "smoke", "--no-progress", "--steps", "2", "--data", "stream"]
    train([*common, "--stage", "frames", "--init-frames", str(smoke_runs["frames"]), "--g-folds", "8",
           "--out", str(tmp_path / "run")])  # fmt: skip
    frames = tmp_path / "run" / "frames" / "latest.pt"
    train([*common, "--stage", "video", "--frames-checkpoint", str(frames), "--out", str(tmp_path / "run")])
    export_variant(frames, tmp_path / "run" / "video" / "latest.pt", "3balls", tmp_path / "models")  # checks parity
    gf, _, _ = load_frame_generator(frames)
    assert gf.fold_out.weight.abs().sum() > 0
    z = np.random.default_rng(3).standard_normal((7, 100)).astype(np.float32) * 3  # far out: many folds
    with torch.no_grad():
        want = gf(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(run_onnx(tmp_path / "models" / "3balls-frames.onnx", z)[0], want, atol=1e-4)


def test_a_g_f_with_coordinate_channels_exports_with_parity_and_fine_tunes_only_with_them(smoke_runs, tmp_path):
    from training.run import main as train

    common = ["--preset", "smoke", "--no-progress", "--steps", "2", "--data", "stream"]
    train([*common, "--stage", "frames", "--g-coords", "--out", str(tmp_path / "run")])
    frames = tmp_path / "run" / "frames" / "latest.pt"
    train([*common, "--stage", "video", "--frames-checkpoint", str(frames), "--out", str(tmp_path / "run")])
    export_variant(frames, tmp_path / "run" / "video" / "latest.pt", "3balls", tmp_path / "models")  # checks parity
    gf, cfg, _ = load_frame_generator(frames)
    assert cfg.g_coords and gf.coords
    z = np.random.default_rng(4).standard_normal((6, 100)).astype(np.float32)
    with torch.no_grad():
        want = gf(torch.from_numpy(z)).numpy()
    np.testing.assert_allclose(run_onnx(tmp_path / "models" / "3balls-frames.onnx", z)[0], want, atol=1e-4)
    train([*common, "--stage", "frames", "--init-frames", str(frames), "--g-coords", "--balls", "1",
           "--out", str(tmp_path / "child")])  # fmt: skip
    with pytest.raises(SystemExit, match="coordinate channels"):  # a parent's coordinates are never dropped
        train([*common, "--stage", "frames", "--init-frames", str(frames), "--out", str(tmp_path / "bad")])
    with pytest.raises(SystemExit, match="coordinate channels"):  # nor added to a parent without them
        train([*common, "--stage", "frames", "--init-frames", str(smoke_runs["frames"]), "--g-coords",
               "--out", str(tmp_path / "bad2")])  # fmt: skip


def test_export_refuses_a_model_that_fails_parity(smoke_runs, tmp_path, monkeypatch):
    real_forward = VideoGenerator.forward

    def drifting(self, z):  # PyTorch side differs from what was exported
        video, zf = real_forward(self, z)
        return video + (1e-3 if not torch.jit.is_tracing() and not torch.onnx.is_in_onnx_export() else 0), zf

    monkeypatch.setattr(VideoGenerator, "forward", drifting)
    with pytest.raises(ExportError, match="differs from PyTorch"):
        export_variant(smoke_runs["frames"], smoke_runs["video"], "bad", tmp_path)
    assert not list(tmp_path.glob("*.onnx")) and not (tmp_path / "manifest.json").exists()


def test_export_refuses_a_frame_generator_the_video_was_not_trained_over(smoke_runs, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--frames", str(smoke_runs["frames1"]), "--video", str(smoke_runs["video"]), "--name", "x",
              "--out", str(tmp_path)])  # fmt: skip
    assert "trained over another G_F" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--frames", str(smoke_runs["video"]), "--video", str(smoke_runs["video"]), "--name", "x",
              "--out", str(tmp_path)])  # fmt: skip
    assert "is from the 'video' stage" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--name", "a b"])


def test_cli_records_table_and_default(smoke_runs, tmp_path, capsys):
    table = tmp_path / "table1.json"
    table.write_text(json.dumps({"rows": {"generated": {"consecutive_frame_mse": {"mean": 0.05}}}}))
    args = ["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--out", str(tmp_path)]
    main([*args, "--name", "first"])
    main([*args, "--name", "second", "--table", str(table), "--default", "--note", "first try"])
    main([*args, "--name", "third", "--swap-frames", str(smoke_runs["frames1"])])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["default"] == "second" and list(manifest["variants"]) == ["first", "second", "third"]
    assert manifest["variants"]["second"]["table1"]["rows"]["generated"]["consecutive_frame_mse"]["mean"] == 0.05
    assert "video_trained_over" in manifest["variants"]["third"]["sources"]
    assert manifest["variants"]["second"]["note"] == "first try"
    assert "wrote" in capsys.readouterr().out


def test_kernel_choice_writes_the_form_asked_for_or_the_faster_one(smoke_runs, tmp_path, capsys, monkeypatch):
    args = ["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--out", str(tmp_path)]
    main([*args, "--name", "plain", "--kernel", "transposed"])
    ops = {n.op_type for n in onnx.load(str(tmp_path / "plain-video.onnx")).graph.node}
    assert "ConvTranspose" in ops and "DepthToSpace" not in ops  # as trained

    main([*args, "--name", "timed", "--kernel", "fastest"])  # both timed for real in ONNX Runtime
    entry = json.loads((tmp_path / "manifest.json").read_text())["variants"]["timed"]
    timing = entry["kernel_timing"]
    assert set(timing["videos_per_s"]) == {"subpixel", "transposed"} and entry["kernel"] == timing["chosen"]
    assert all(rate > 0 for rates in timing["videos_per_s"].values() for rate in rates.values())
    assert f"kernel: {timing['chosen']}" in capsys.readouterr().out
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "timed-video.onnx")).metadata_props}
    assert meta["kernel"] == timing["chosen"] and json.loads(meta["kernel_timing"]) == timing
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".onnx") == [
        "plain-frames.onnx",
        "plain-video.onnx",
        "timed-frames.onnx",
        "timed-video.onnx",
    ]  # the slower form is not left behind

    for faster, form in (("transposed", "ConvTranspose"), ("subpixel", "DepthToSpace")):
        monkeypatch.setattr(
            onnx_export, "videos_per_s",
            lambda path, latent, f=faster: {1: 99.0, 8: 99.0} if f in path.parent.name else {1: 1.0, 8: 1.0},
        )  # fmt: skip  # the choice follows the timing, whichever way it goes
        main([*args, "--name", f"pick-{faster}", "--kernel", "fastest"])
        graph_ops = {n.op_type for n in onnx.load(str(tmp_path / f"pick-{faster}-video.onnx")).graph.node}
        assert form in graph_ops


def test_training_record_names_the_exported_step():
    from training.config import make_config

    cfg = make_config("video", "cpu", {"instance_noise": 0.3, "steps": 6000})
    assert onnx_export.training_record(cfg)["command"].endswith("--preset cpu --steps 6000 --instance-noise 0.3")
    picked = onnx_export.training_record(cfg, step=5000)  # a checkpoint before the run's end
    assert picked["command"].endswith("--steps 5000 --instance-noise 0.3") and picked["steps"] == 5000
    resumed = onnx_export.training_record(make_config("frames", "cpu", {"steps": 18000}), step=12000)
    assert resumed["command"] == "python -m training.run --stage frames --preset cpu --steps 12000"
    shipped = onnx_export.training_record(make_config("frames", "cpu", {"steps": 18000}), step=7000)
    assert shipped["command"] == "python -m training.run --stage frames --preset cpu"  # the preset's own count


def test_sample_gifs_are_the_service_files(smoke_models, tmp_path):
    from balls.pixels import to_pixels
    from inference.media import encode_gif
    from inference.models import latent_from_seed, load_variants
    from inference.samples import main as samples
    from tests.serving import decode_gif

    samples(["--models", str(smoke_models), "--out", str(tmp_path), "--seeds", "3,4", "--scale", "2"])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "1ball-swap-seed3.gif",
        "1ball-swap-seed4.gif",
        "3balls-seed3.gif",
        "3balls-seed4.gif",
        "real-1ball-seed3.gif",
        "real-1ball-seed4.gif",
        "real-3balls-seed3.gif",
        "real-3balls-seed4.gif",
    ]
    variant = load_variants(smoke_models)[0]["3balls"]
    video = to_pixels(variant.generate_videos(latent_from_seed(4, 100)[None])[0])
    assert (tmp_path / "3balls-seed4.gif").read_bytes() == encode_gif(video, 10, 2)
    real = decode_gif((tmp_path / "real-3balls-seed3.gif").read_bytes())
    assert real.shape == (30, 60, 60)
    from balls.sequences import real_video

    assert np.array_equal(real[:, ::2, ::2], real_video(3, 3))  # the gallery's real video for seed 3


def test_cli_refuses_the_shipped_models_folder_without_the_flag(smoke_runs, capsys):
    before = {p.name: p.read_bytes() for p in onnx_export.SHIPPED.iterdir() if p.is_file()}
    args = ["--frames", str(smoke_runs["frames"]), "--video", str(smoke_runs["video"]), "--name", "smoke"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--out", str(onnx_export.SHIPPED)])
    assert exc.value.code == 2 and "--replace-shipped" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in onnx_export.SHIPPED.iterdir() if p.is_file()} == before
    with pytest.raises(SystemExit):
        main(args)  # and --out has no default
