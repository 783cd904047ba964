"""`python -m training.run` end to end on the smoke preset: run folders, checkpoints, resume."""

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from training import checkpoint, data
from training.config import FramesConfig, VideoConfig, make_config
from training.loop import fit, generator_lr, resolve_device, steepest_directions, steepest_step
from training.run import main
from training.stages import frames_stage

SMOKE = ["--preset", "smoke", "--no-progress"]


def run(out: Path, *extra: str) -> None:
    main([*SMOKE, "--out", str(out), *extra])


def load_state(path: Path, key: str = "generator") -> dict:
    return checkpoint.load(path)[key]


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_smoke_run_writes_both_run_folders(tmp_path):
    run(tmp_path, "--stage", "all", "--steps", "4", "--keep-checkpoints", "1", "--checkpoint-every", "1")
    for stage, strip in (("frames", False), ("video", True)):
        folder = tmp_path / stage
        assert json.loads((folder / "config.json").read_text())["preset"] == "smoke"
        rows = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows] == [1, 2, 3, 4]
        assert {"loss_d", "loss_g", "d_real", "d_fake", "steps_per_s", "right_count"} <= rows[-1].keys()
        assert ("video_mse" if strip else "random_z_mse") in rows[-1]
        assert sorted(p.name for p in folder.glob("checkpoint-*.pt")) == ["checkpoint-0000004.pt"]  # rotated
        assert (folder / "samples-0000004.png").exists()
        ckpt = checkpoint.load(folder / "latest.pt", stage=stage)
        assert ckpt["step"] == 4 and ckpt["format_version"] == checkpoint.FORMAT_VERSION
    video = checkpoint.load(tmp_path / "video" / "latest.pt")
    assert_same_state(video["frames_generator"], load_state(tmp_path / "frames" / "latest.pt"))


def test_a_run_can_be_watched_as_curves_and_in_tensorboard(tmp_path):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run(tmp_path, "--stage", "all", "--steps", "4")  # smoke: stats every step, evaluation at 2 and 4
    for stage, quality in (("frames", "random_z_mse"), ("video", "teleport_rate")):
        folder = tmp_path / stage
        curves = Image.open(folder / "curves.png")
        assert curves.size[0] > 2 * curves.size[1] and np.asarray(curves.convert("L")).std() > 5  # panels, drawn
        events = EventAccumulator(str(folder / "tensorboard"))
        events.Reload()
        tags = events.Tags()
        assert {"loss_d", "loss_g", "d_real", "d_fake", quality} <= set(tags["scalars"])
        stats = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines()]
        assert [e.step for e in events.Scalars("loss_d")] == [r["step"] for r in stats]  # every stats line
        assert [e.value for e in events.Scalars("loss_d")] == pytest.approx([r["loss_d"] for r in stats])
        assert [e.step for e in events.Images("samples")] == [2, 4]  # the sample images of each evaluation
    videos = EventAccumulator(str(tmp_path / "video" / "tensorboard"))
    videos.Reload()
    shown = videos.Images("sample_videos")  # stage 2 also logs its samples as animated GIFs
    assert [e.step for e in shown] == [2, 4]
    gif = Image.open(io.BytesIO(shown[-1].encoded_image_string))
    assert gif.format == "GIF" and (gif.width, gif.height) == (shown[-1].width, shown[-1].height)
    durations = []  # Pillow merges repeated frames into one longer one: the whole is 30 frames at 10 fps
    for i in range(gif.n_frames):
        gif.seek(i)
        durations.append(gif.info["duration"])
    assert sum(durations) == 3000


@pytest.mark.parametrize("stage", ["frames", "video"])
def test_resume_continues_exactly(tmp_path, stage):
    if stage == "video":
        run(tmp_path / "gf", "--stage", "frames", "--steps", "2")
        extra = ["--frames-checkpoint", str(tmp_path / "gf" / "frames" / "latest.pt"), "--instance-noise", "0.1"]
    else:
        extra = []
    run(tmp_path / "a", "--stage", stage, "--steps", "6", *extra)
    run(tmp_path / "b", "--stage", stage, "--steps", "3", *extra)
    run(tmp_path / "b", "--stage", stage, "--steps", "6", "--resume", *extra)
    a, b = (checkpoint.load(p / stage / "latest.pt") for p in (tmp_path / "a", tmp_path / "b"))
    assert a["step"] == b["step"] == 6
    for key in ("generator", "discriminators"):
        assert_same_state(a[key], b[key])


@pytest.mark.parametrize("stage", ["frames", "video"])
def test_branch_continues_another_run_under_a_changed_config(tmp_path, stage, capsys):
    if stage == "video":
        run(tmp_path / "gf", "--stage", "frames", "--steps", "2")
        extra = ["--frames-checkpoint", str(tmp_path / "gf" / "frames" / "latest.pt")]
    else:
        extra = []
    common = ["--stage", stage, "--checkpoint-every", "1", "--keep-checkpoints", "9", *extra]
    run(tmp_path / "a", *common, "--steps", "6")
    source = str(tmp_path / "a" / stage / "checkpoint-0000003.pt")
    # unchanged config: the branch is the source run's own continuation, bit for bit
    run(tmp_path / "same", *common, "--steps", "6", "--branch", source)
    assert "at step 3; same config" in capsys.readouterr().out
    a, same = (checkpoint.load(p / stage / "latest.pt") for p in (tmp_path / "a", tmp_path / "same"))
    assert a["step"] == same["step"] == 6
    for key in ("generator", "discriminators"):
        assert_same_state(a[key], same[key])
    # a changed config: printed, used from the branch point on (learning rates included), resumable
    changed = [*common, "--branch", source, "--lr-d", "1e-4", "--instance-noise", "0.1"]
    run(tmp_path / "b", *changed, "--steps", "5")
    out = capsys.readouterr().out
    assert "branched" in out and "lr_d: 0.0003 -> 0.0001" in out and "instance_noise: 0.0 -> 0.1" in out
    b = checkpoint.load(tmp_path / "b" / stage / "latest.pt")
    assert b["step"] == 5 and b["config"]["branch"] == source
    assert {g["lr"] for g in b["opt_d"]["param_groups"]} == {1e-4}
    rows = [json.loads(x) for x in (tmp_path / "b" / stage / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 5]
    assert not torch.equal(b["generator"][next(iter(b["generator"]))], a["generator"][next(iter(a["generator"]))])
    run(tmp_path / "b", *changed, "--steps", "6", "--resume")  # the branch's own run resumes as any run
    assert checkpoint.load(tmp_path / "b" / stage / "latest.pt")["step"] == 6


def test_branch_refusals(tmp_path):
    run(tmp_path / "a", "--stage", "frames", "--steps", "2")
    source = str(tmp_path / "a" / "frames" / "latest.pt")
    with pytest.raises(SystemExit, match="nothing to train"):
        run(tmp_path / "b", "--stage", "frames", "--steps", "2", "--branch", source)
    with pytest.raises(SystemExit, match="does not fit this config's networks"):
        run(tmp_path / "c", "--stage", "frames", "--steps", "4", "--branch", source, "--g-width", "8")
    slim = checkpoint.slim(Path(source), tmp_path / "slim.pt")
    with pytest.raises(SystemExit, match="slim checkpoint"):
        run(tmp_path / "d", "--stage", "frames", "--steps", "4", "--branch", str(slim))
    with pytest.raises(SystemExit, match="does not exist|unreadable|no such"):
        run(tmp_path / "e", "--stage", "frames", "--steps", "4", "--branch", str(tmp_path / "nope.pt"))
    with pytest.raises(SystemExit, match="already holds a run"):
        run(tmp_path / "a", "--stage", "frames", "--steps", "4", "--branch", source)
    with pytest.raises(SystemExit):
        run(tmp_path / "f", "--stage", "all", "--steps", "4", "--branch", source)
    assert not (tmp_path / "b" / "frames" / "latest.pt").exists()


def test_steepest_step_finds_the_direction_of_largest_gain():
    torch.manual_seed(0)
    a = torch.randn(36, 10) * torch.linspace(0.2, 3.0, 10)  # a linear G: z -> A z as a 6x6 frame
    generate = lambda z: (z @ a.T).view(-1, 1, 6, 6)  # noqa: E731
    z, d = torch.randn(5, 10), torch.randn(5, 10)
    d = d * (0.5 / d.norm(dim=1, keepdim=True))
    top = torch.linalg.svd(a).Vh[0]

    def gain(step):
        return (generate(z + step) - generate(z)).flatten(1).norm(dim=1) / step.norm(dim=1)

    once, many = steepest_step(generate, z, d, 1), steepest_step(generate, z, d, 30)
    assert torch.allclose(once.norm(dim=1), torch.full((5,), 0.5)) and not once.requires_grad
    assert (gain(once) > gain(d)).all()
    assert torch.allclose((many @ top).abs() / 0.5, torch.ones(5), atol=1e-4)  # the top singular direction
    assert torch.allclose(gain(many), torch.full((5,), float(torch.linalg.svdvals(a)[0])), rtol=1e-4)
    assert torch.equal(steepest_step(generate, z, d, 0), d)  # no power steps: the random steps


def test_steepest_directions_find_every_direction_of_gain():
    torch.manual_seed(0)
    gains = torch.tensor([9.0, 6.0, 4.0, 1.5, 0.01, 0.01, 0.005, 0.0])  # four ways to move, four flat
    u, _ = torch.linalg.qr(torch.randn(36, 8))
    v, _ = torch.linalg.qr(torch.randn(8, 8))
    a = u @ torch.diag(gains) @ v.T  # a linear G: z -> A z as a 6x6 frame, singular values `gains`
    generate = lambda z: (z @ a.T).view(-1, 1, 6, 6)  # noqa: E731
    z, d = torch.randn(5, 8), torch.randn(5, 4, 8)
    d = d * (0.5 / d.norm(dim=2, keepdim=True))
    steps = steepest_directions(generate, z, d, 2)
    assert steps.shape == (20, 8) and not steps.requires_grad
    assert torch.allclose(steps.norm(dim=1), torch.full((20,), 0.5), atol=1e-5)
    each = steps.view(5, 4, 8)
    assert torch.allclose(each @ each.transpose(1, 2), 0.25 * torch.eye(4).expand(5, 4, 4), atol=1e-5)
    got = (generate(steps).flatten(1).norm(dim=1) / 0.5).view(5, 4)  # the gain along each
    assert torch.allclose(got.sort(dim=1, descending=True).values, gains[:4].expand(5, 4), rtol=1e-3)
    moved = generate(steps).flatten(1).view(5, 4, 36)  # the changes on screen are orthogonal too
    products = moved @ moved.transpose(1, 2)
    assert (products - torch.diag_embed(torch.diagonal(products, dim1=1, dim2=2))).abs().max() < 1e-3


def test_resume_refusals(tmp_path, capsys):
    with pytest.raises(SystemExit, match="no checkpoint to resume from"):
        run(tmp_path, "--stage", "frames", "--resume")
    run(tmp_path, "--stage", "frames", "--steps", "2")
    with pytest.raises(SystemExit, match="already holds a run"):
        run(tmp_path, "--stage", "frames", "--steps", "2")
    with pytest.raises(SystemExit, match=r"another config \(batch: 8 -> 4\)"):
        run(tmp_path, "--stage", "frames", "--steps", "4", "--resume", "--batch", "4")
    run(tmp_path / "b", "--stage", "frames", "--steps", "1", "--seed", "4")
    run(tmp_path, "--stage", "video", "--steps", "1")
    with pytest.raises(SystemExit, match="over another G_F"):
        run(tmp_path, "--stage", "video", "--steps", "2", "--resume",
            "--frames-checkpoint", str(tmp_path / "b" / "frames" / "latest.pt"))  # fmt: skip
    (tmp_path / "frames" / "latest.pt").write_bytes(b"truncated")
    with pytest.raises(SystemExit, match="unreadable"):
        run(tmp_path, "--stage", "frames", "--steps", "4", "--resume")


def test_stage_two_needs_a_frame_generator(tmp_path):
    with pytest.raises(SystemExit, match="needs a trained G_F"):
        run(tmp_path, "--stage", "video")
    assert not (tmp_path / "data").exists()  # refused before any data set was written
    run(tmp_path, "--stage", "all", "--steps", "1")
    with pytest.raises(SystemExit, match="is from the 'video' stage, not 'frames'"):
        run(tmp_path / "x", "--stage", "video", "--frames-checkpoint", str(tmp_path / "video" / "latest.pt"))
    with pytest.raises(SystemExit, match="missing.pt does not exist"):
        run(tmp_path / "x", "--stage", "video", "--frames-checkpoint", str(tmp_path / "missing.pt"))


def test_frame_generator_is_bit_identical_after_stage_two(tmp_path):
    run(tmp_path, "--stage", "frames", "--steps", "3")
    before = load_state(tmp_path / "frames" / "latest.pt")
    assert any("running_mean" in k for k in before)  # BN statistics are part of what must not move
    run(tmp_path, "--stage", "video", "--steps", "3")
    after = checkpoint.load(tmp_path / "video" / "latest.pt")["frames_generator"]
    assert_same_state(before, after)


def test_projections_are_unchanged_by_training(tmp_path):
    cfg = make_config("frames", "smoke", {"steps": 3})
    stage = frames_stage(cfg, tmp_path / "frames", torch.device("cpu"), None)
    before = stage.disc.projection.weight.clone()
    layer_before = stage.disc.layers[0].weight.detach().clone()
    fit(stage, progress=False)
    assert torch.equal(stage.disc.projection.weight, before)
    assert not torch.equal(stage.disc.layers[0].weight, layer_before)  # the rest did train


def test_ctrl_c_saves_a_checkpoint(tmp_path):
    cfg = make_config("frames", "smoke", {"steps": 10, "checkpoint_every": 100})
    stage = frames_stage(cfg, tmp_path / "frames", torch.device("cpu"), None)
    real = stage.real_batch

    def interrupted(step: int) -> torch.Tensor:
        if step == 3:
            raise KeyboardInterrupt
        return real(step)

    stage.real_batch = interrupted
    with pytest.raises(SystemExit) as exc:
        fit(stage, progress=False)
    assert exc.value.code == 130
    assert checkpoint.load(tmp_path / "frames" / "latest.pt")["step"] == 3


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    checkpoint.save(tmp_path, {"stage": "frames", "x": torch.ones(3)}, step=1, keep=3)

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        checkpoint.save(tmp_path, {"stage": "frames", "x": torch.zeros(3)}, step=2, keep=3)
    monkeypatch.undo()
    assert checkpoint.load(tmp_path / "latest.pt")["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-0000001.pt", "latest.pt"]


def test_foreign_and_old_checkpoints_are_refused(tmp_path):
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not a checkpoint of this project"):
        checkpoint.load(tmp_path / "foreign.pt")
    torch.save({"format_version": 0, "stage": "frames"}, tmp_path / "old.pt")
    with pytest.raises(checkpoint.CheckpointError, match="format version 0"):
        checkpoint.load(tmp_path / "old.pt")


def test_data_options(tmp_path):
    path = tmp_path / "set.npy"
    data.write_dataset(path, 10, 1, length=40, seed=1)
    run(tmp_path / "file", "--stage", "all", "--steps", "2", "--data", str(path), "--balls", "1")
    run(tmp_path / "stream", "--stage", "frames", "--steps", "2", "--data", "stream")
    assert not (tmp_path / "stream" / "data").exists()  # nothing written when streaming
    with pytest.raises(FileNotFoundError):
        run(tmp_path / "bad", "--stage", "frames", "--data", str(tmp_path / "nope.npy"))


def test_flags_the_stage_does_not_use_are_refused(tmp_path, capsys):
    cases = [
        (["--stage", "frames", "--lstm-hidden", "5"], "--lstm-hidden is a setting of the video stage; --stage frames"),
        (["--stage", "video", "--g-width", "8"], "--g-width is a setting of the frames stage; --stage video"),
        (["--stage", "frames", "--frames-checkpoint", "x.pt"], "--frames-checkpoint is a setting of the video stage"),
        (["--stage", "frames", "--data", "set.npy", "--data-sequences", "9"], "--data-sequences describes a generated"),
    ]
    for flags, message in cases:
        with pytest.raises(SystemExit) as exc:
            main(["--preset", "smoke", "--out", str(tmp_path / "x"), *flags])
        assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    main(["--preset", "smoke", "--stage", "all", "--out", str(tmp_path / "ok"), "--lstm-hidden", "5", "--dry-run"])


def test_epochs_count_the_sequences_of_the_data_file(tmp_path):
    path = tmp_path / "set.npy"
    data.write_dataset(path, 20, 1, length=40, seed=1)  # the smoke preset's own data set would have 16
    run(tmp_path / "run", "--stage", "frames", "--epochs", "3", "--data", str(path), "--balls", "1")
    cfg = json.loads((tmp_path / "run" / "frames" / "config.json").read_text())
    assert (cfg["data_sequences"], cfg["data_length"]) == (20, 40)
    rows = [json.loads(x) for x in (tmp_path / "run" / "frames" / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 6  # 3 epochs of 20 // 8 = 2 batches (the preset's 4 steps are replaced)


def test_every_config_flag_reaches_the_config(tmp_path):
    run(
        tmp_path, "--stage", "all", "--epochs", "2", "--data-sequences", "8", "--data-length", "31", "--seed", "3",
        "--device", "cpu", "--latent", "20", "--batch", "4", "--lr-g", "1e-4", "--lr-d", "2e-4",
        "--optimizer", "adam", "--g-loss", "hypervolume", "--d-count", "2", "--d-width", "3",
        "--no-minibatch-std", "--log-every", "2", "--eval-every", "2", "--sample-every", "4",
        "--checkpoint-every", "2", "--keep-checkpoints", "2", "--amp", "--g-width", "8", "--video-length", "31",
        "--fc", "8,16", "--seq-features", "4", "--lstm-hidden", "5", "--lstm-layers", "1", "--zf-scale", "2.5",
        "--zf-sphere", "--instance-noise", "0.2", "--mode-seeking", "0.5", "--spectral-norm",
        "--zf-path", "absolute", "--zf-step", "0.3", "--jacobian-clamp", "0.5", "--jc-min", "1", "--jc-max", "9",
        "--jc-eps", "0.3", "--jc-power", "1", "--jc-directions", "2", "--path-length", "0.5", "--pl-every", "2",
        "--gain-steady", "0.5",
    )  # fmt: skip
    f = FramesConfig(**json.loads((tmp_path / "frames" / "config.json").read_text()))
    v = json.loads((tmp_path / "video" / "config.json").read_text())
    assert (f.seed, f.latent, f.batch, f.lr_g, f.lr_d, f.optimizer, f.g_loss) == (
        3,
        20,
        4,
        1e-4,
        2e-4,
        "adam",
        "hypervolume",
    )
    assert (f.d_count, f.d_width, f.minibatch_std, f.g_width, f.amp) == (2, 3, False, 8, True)
    assert f.total_steps == 4  # 2 epochs of 8 sequences in batches of 4
    assert (v["video_length"], v["fc"], v["seq_features"], v["lstm_hidden"], v["lstm_layers"]) == (31, [8, 16], 4, 5, 1)
    assert v["zf_scale"] == 2.5 and v["zf_sphere"] and v["data_length"] == 31 and v["instance_noise"] == 0.2
    assert v["mode_seeking"] == 0.5 and f.mode_seeking == 0.5 and v["spectral_norm"] and f.spectral_norm
    assert v["zf_path"] == "absolute" and v["zf_step"] == 0.3
    assert (f.jacobian_clamp, f.jc_min, f.jc_max, f.jc_eps, f.jc_power) == (0.5, 1.0, 9.0, 0.3, 1)
    frames_rows = [json.loads(x) for x in (tmp_path / "frames" / "stats.jsonl").read_text().splitlines()]
    assert all(r["jacobian_clamp"] >= 0 for r in frames_rows)
    assert f.gain_steady == 0.5 and all(r["gain_steady"] >= 0 for r in frames_rows)
    assert (f.path_length, f.pl_every, f.jc_directions) == (0.5, 2, 2)
    assert [r["step"] for r in frames_rows] == [2, 4] and all(r["path_length"] > 0 for r in frames_rows)
    rows = [json.loads(x) for x in (tmp_path / "video" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4]
    assert all(r["mode_seeking"] > 0 for r in rows) and 0 <= rows[-1]["near_identical"] <= 1
    assert len(list((tmp_path / "video").glob("samples-*.png"))) == 1


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path, capsys):
    main(["--preset", "paper", "--stage", "all", "--out", str(tmp_path), "--dry-run"])
    out = capsys.readouterr().out
    assert "27,682,305 trained parameters" in out and "48 x 10,508,033 parameters" in out
    assert "78,100 steps of batch 64" in out and "16 x " in out  # 50 epochs of 100,000 // 64 batches
    assert not any(tmp_path.rglob("*.pt")) and not (tmp_path / "data").exists()


def test_help_documents_every_flag():
    out = subprocess.run([sys.executable, "-m", "training.run", "--help"], capture_output=True, text=True).stdout
    flags = "--stage --preset --balls --out --frames-checkpoint --resume --steps --epochs --data --dry-run --device"
    for flag in (*flags.split(), "--g-loss", "--minibatch-std", "--amp", "--no-progress"):
        assert flag in out


def test_config_validation_messages():
    with pytest.raises(ValueError, match="batch must be at least 1"):
        make_config("frames", "smoke", {"batch": 0})
    with pytest.raises(ValueError, match="optimizer must be one of"):
        make_config("frames", "smoke", {"optimizer": "sgd"})
    with pytest.raises(ValueError, match="video_length must be in"):
        make_config("video", "smoke", {"video_length": 40})
    with pytest.raises(ValueError, match="mode_seeking must be non-negative"):
        make_config("video", "smoke", {"mode_seeking": -1.0})
    with pytest.raises(ValueError, match="unknown preset"):
        make_config("frames", "huge")
    with pytest.raises(ValueError, match="jc_power must be non-negative"):
        make_config("frames", "smoke", {"jc_power": -1})
    with pytest.raises(ValueError, match="needs jc_power >= 1"):
        make_config("frames", "smoke", {"jc_directions": 2})
    with pytest.raises(ValueError, match="path_length must be >= 0 and pl_every >= 1"):
        make_config("frames", "smoke", {"pl_every": 0})
    with pytest.raises(ValueError, match="do not go together"):
        make_config("video", "cpu", {"zf_look": True, "zf_sphere": True})
    with pytest.raises(ValueError, match="give one"):
        make_config("frames", "smoke", {"init_frames": "a.pt", "branch": "b.pt"})
    with pytest.raises(SystemExit, match="config error"):
        main([*SMOKE, "--out", "/tmp/unused", "--g-width", "6", "--dry-run"])
    assert isinstance(make_config("video", "cpu"), VideoConfig)


def test_device_resolution():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device"):
            resolve_device("cuda")


def test_batches_follow_the_data(tmp_path):
    path = tmp_path / "set.npy"
    data.write_dataset(path, 20, 3, length=32, seed=1)
    cfg = make_config("frames", "smoke")
    stage = frames_stage(cfg, tmp_path, torch.device("cpu"), data.open_dataset(path))
    a, b = stage.real_batch(0), stage.real_batch(0)
    assert torch.equal(a, b) and a.shape == (8, 1, 30, 30)  # a step's batch is a function of the step
    assert not torch.equal(a, stage.real_batch(1))
    values = set(np.unique(a.numpy()).round(4)) - {-1.0}
    assert values and all(-1 <= v <= 1 for v in values)


def test_instance_noise_reaches_the_discriminators(tmp_path):
    from training.loop import instance_noise

    x = torch.zeros(4, 30, 30)
    a, b = instance_noise(1, 5, 0.5, torch.device("cpu")), instance_noise(1, 5, 0.5, torch.device("cpu"))
    torch.testing.assert_close(a(x), b(x))  # a function of (seed, step): resumable
    assert a(x).std().item() == pytest.approx(0.5, rel=0.1)
    assert instance_noise(1, 5, 0.0, torch.device("cpu"))(x) is x
    run(tmp_path / "plain", "--stage", "frames", "--steps", "2")
    run(tmp_path / "noisy", "--stage", "frames", "--steps", "2", "--instance-noise", "0.3")
    rows = [
        json.loads((tmp_path / k / "frames" / "stats.jsonl").read_text().splitlines()[0]) for k in ("plain", "noisy")
    ]
    assert rows[0]["d_real"] != rows[1]["d_real"]


KILLED_WRITER = """
import sys, time
from pathlib import Path
import torch
real_save, marker = torch.save, Path(sys.argv[1])

def save(obj, f, *args, **kwargs):  # the step-4 checkpoint stops half-written, and waits to be killed
    if isinstance(obj, dict) and obj.get("step") == 4:
        f.write(b"half a checkpoint")
        f.flush()
        marker.write_text(f.name)
        time.sleep(600)
    return real_save(obj, f, *args, **kwargs)

torch.save = save
from training.run import main
main(sys.argv[2:])
"""


def test_kill_9_mid_checkpoint_write_then_resume(tmp_path):
    """A real SIGKILL while checkpoint 4 is being written: checkpoint 2 stays loadable, --resume
    continues from it, and the result equals an uninterrupted run bit for bit."""
    import os
    import signal
    import time

    args = [*SMOKE, "--stage", "frames", "--data", "stream", "--steps", "6"]
    marker = tmp_path / "writing"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(marker), *args, "--out", str(tmp_path / "k")],
                            env={**os.environ, "PYTHONPATH": "."})  # fmt: skip
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the writer never reached checkpoint 4"
        time.sleep(0.05)
    folder = tmp_path / "k" / "frames"
    assert Path(marker.read_text()).exists()  # killed while its temporary file is half-written
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert checkpoint.load(folder / "latest.pt")["step"] == 2
    assert not (folder / "checkpoint-0000004.pt").exists()

    main([*args, "--out", str(tmp_path / "k"), "--resume"])
    assert checkpoint.load(folder / "latest.pt")["step"] == 6
    assert not list(folder.glob(".*.tmp-*"))  # the killed writer's temporary is cleaned up
    main([*args, "--out", str(tmp_path / "straight")])
    assert_same_state(load_state(folder / "latest.pt"), load_state(tmp_path / "straight" / "frames" / "latest.pt"))


def test_checkpoint_of_another_preset_is_refused(tmp_path):
    run(tmp_path, "--stage", "frames", "--steps", "2", "--data", "stream")
    with pytest.raises(SystemExit, match=r"another config \(preset: 'smoke' -> 'cpu'"):
        main(["--preset", "cpu", "--no-progress", "--out", str(tmp_path), "--stage", "frames", "--resume",
              "--steps", "4", "--data", "stream"])  # fmt: skip


def test_slim_checkpoint_keeps_what_export_needs(tmp_path):
    run(tmp_path, "--stage", "all", "--steps", "2", "--data", "stream")
    slim_video = checkpoint.slim(tmp_path / "video" / "latest.pt", tmp_path / "slim" / "video.pt")
    ckpt = checkpoint.load(slim_video, stage="video")
    assert "discriminators" not in ckpt and "opt_d" not in ckpt
    full = checkpoint.load(tmp_path / "video" / "latest.pt")
    assert_same_state(ckpt["generator"], full["generator"])
    assert_same_state(ckpt["frames_generator"], full["frames_generator"])
    with pytest.raises(SystemExit, match="does not exist"):
        checkpoint.main(["slim", str(tmp_path / "nope.pt"), str(tmp_path / "x.pt")])


def test_residual_path_trains_and_resumes(tmp_path):
    run(tmp_path, "--stage", "all", "--zf-path", "residual", "--zf-step", "0.05", "--data", "stream")
    ckpt = checkpoint.load(tmp_path / "video" / "latest.pt")
    assert ckpt["config"]["zf_path"] == "residual" and ckpt["step"] == 4


def test_looking_path_trains_resumes_and_loads_with_its_eye(tmp_path, capsys):
    from training.build import build_sequence_generator, load_sequence_generator, same_state

    run(tmp_path / "gf", "--stage", "frames", "--steps", "2")
    video = ["--stage", "video", "--frames-checkpoint", str(tmp_path / "gf" / "frames" / "latest.pt"),
             "--zf-path", "residual", "--zf-look"]  # fmt: skip
    run(tmp_path / "a", *video, "--steps", "4")
    assert "zf_look (G_V sees its frames)" in capsys.readouterr().out
    run(tmp_path / "b", *video, "--steps", "2")
    run(tmp_path / "b", *video, "--steps", "4", "--resume")
    a, b = (checkpoint.load(p / "video" / "latest.pt") for p in (tmp_path / "a", tmp_path / "b"))
    assert_same_state(a["generator"], b["generator"])
    gv, cfg, ckpt = load_sequence_generator(tmp_path / "a" / "video" / "latest.pt")
    assert cfg.zf_look and same_state(gv.eye.state_dict(), ckpt["frames_generator"])  # its eye: the frozen G_F
    assert not any(p.requires_grad for p in gv.eye.parameters())
    with pytest.raises(ValueError, match="give eye"):
        build_sequence_generator(cfg, 100)  # a looking G_V is never built blind
    with pytest.raises(SystemExit, match="zf_look needs zf_path residual"):
        run(tmp_path / "c", *video[:-3], "--zf-look")


def test_init_frames_fine_tunes_from_another_g_f(tmp_path, capsys):
    run(tmp_path / "parent", "--stage", "frames", "--data", "stream")
    parent = tmp_path / "parent" / "frames" / "latest.pt"
    cfg = make_config("frames", "smoke", {"init_frames": str(parent), "seed": 3})
    stage = frames_stage(cfg, tmp_path / "child", torch.device("cpu"), None)
    want = checkpoint.load(parent)["generator"]
    assert all(torch.equal(stage.generator.state_dict()[k], want[k]) for k in want)  # step 0 is the parent
    run(tmp_path / "child", "--stage", "frames", "--data", "stream", "--init-frames", str(parent), "--balls", "1")
    assert json.loads((tmp_path / "child" / "frames" / "config.json").read_text())["init_frames"] == str(parent)
    with pytest.raises(SystemExit, match="width"):
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--init-frames", str(parent), "--g-width", "8")


def test_init_frames_into_a_g_f_with_folds_starts_as_the_parent(tmp_path):
    from training.build import load_frame_generator

    run(tmp_path / "parent", "--stage", "frames", "--data", "stream")
    parent = tmp_path / "parent" / "frames" / "latest.pt"
    cfg = make_config("frames", "smoke", {"init_frames": str(parent), "g_folds": 4})
    stage = frames_stage(cfg, tmp_path / "staged", torch.device("cpu"), None)
    gf_parent, _, _ = load_frame_generator(parent)
    z = torch.randn(6, gf_parent.latent)
    with torch.no_grad():
        assert torch.equal(stage.generator.eval()(z), gf_parent(z))  # step 0 draws the parent's frames
    run(tmp_path / "child", "--stage", "frames", "--data", "stream", "--init-frames", str(parent), "--g-folds", "4")
    child = tmp_path / "child" / "frames" / "latest.pt"
    gf_child, cfg_child, _ = load_frame_generator(child)
    assert cfg_child.g_folds == 4 and gf_child.fold_out.weight.abs().sum() > 0  # the folds trained
    with pytest.raises(SystemExit, match="4 folds"):  # a parent's folds are never dropped
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--init-frames", str(child))


def test_fold_span_draws_the_folds_inside_the_parents_steepest_directions(tmp_path):
    from training import folds
    from training.build import load_frame_generator

    run(tmp_path / "parent", "--stage", "frames", "--data", "stream")
    parent = tmp_path / "parent" / "frames" / "latest.pt"
    gf_parent, _, _ = load_frame_generator(parent)
    span = folds.steepest_span(gf_parent, 4, seed=5)
    assert torch.allclose(span.T @ span, torch.eye(4), atol=1e-5)
    # the span is where the parent moves most: a step along its first vector changes more than random ones
    z, eps = torch.randn(16, gf_parent.latent), 0.05
    with torch.no_grad():
        along = (gf_parent(z + eps * span[:, 0]) - gf_parent(z)).flatten(1).norm(dim=1).mean()
        d = torch.nn.functional.normalize(torch.randn(16, gf_parent.latent), dim=1)
        random = (gf_parent(z + eps * d) - gf_parent(z)).flatten(1).norm(dim=1).mean()
    assert along > 1.5 * random

    base = {"init_frames": str(parent), "g_folds": 6, "seed": 5}
    cpu = torch.device("cpu")
    plain = frames_stage(make_config("frames", "smoke", base), tmp_path / "a", cpu, None)
    aimed = frames_stage(make_config("frames", "smoke", {**base, "g_fold_span": 4}), tmp_path / "b", cpu, None)
    w_plain, w_aimed = plain.generator.fold_in.weight.detach(), aimed.generator.fold_in.weight.detach()
    assert torch.allclose(w_aimed.norm(dim=1), w_plain.norm(dim=1), rtol=1e-5)  # as long as drawn
    assert not torch.allclose(w_aimed, w_plain)
    inside = w_aimed @ span @ span.T  # each row's part inside the span: the whole row
    assert torch.allclose(inside, w_aimed, atol=1e-4 * w_aimed.norm().item())
    assert (w_plain @ span).norm() < 0.8 * w_plain.norm()  # drawn over all of z, most of it lies outside
    with torch.no_grad():
        assert torch.equal(aimed.generator.eval()(z), gf_parent(z))  # still silent: step 0 is the parent
    for bad in ({"g_fold_span": 4}, {"g_fold_span": 4, "g_folds": 6}, {**base, "g_fold_span": gf_parent.latent + 1}):
        with pytest.raises(ValueError, match="g_fold_span"):
            make_config("frames", "smoke", bad)


def test_resume_from_a_corrupt_latest_names_the_intact_checkpoint(tmp_path, capsys):
    run(tmp_path, "--stage", "frames", "--steps", "4")  # checkpoints at steps 2 and 4
    folder = tmp_path / "frames"
    stats_before = (folder / "stats.jsonl").read_text().splitlines()
    latest = folder / "latest.pt"
    data = latest.read_bytes()
    latest.unlink()  # latest.pt is a hard link to checkpoint 4: break both, as a torn write would
    latest.write_bytes(data[: len(data) // 3])
    (folder / "checkpoint-0000004.pt").write_bytes(data[: len(data) // 3])
    with pytest.raises(SystemExit) as exc:
        run(tmp_path, "--stage", "frames", "--steps", "6", "--resume")
    intact = folder / "checkpoint-0000002.pt"
    assert f"the newest intact checkpoint is {intact} (step 2): --resume {intact}" in str(exc.value)
    run(tmp_path, "--stage", "frames", "--steps", "6", "--resume", str(intact))
    steps = [json.loads(x)["step"] for x in (folder / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6] and len(stats_before) == 4  # steps 3-4 written once, not twice
    assert checkpoint.load(folder / "latest.pt")["step"] == 6
    with pytest.raises(SystemExit):
        run(tmp_path, "--stage", "all", "--resume", str(intact))  # a path resumes one stage only


def test_discriminator_warm_up_holds_g_f_then_trains_it(tmp_path):
    run(tmp_path / "parent", "--stage", "frames", "--data", "stream")
    parent = checkpoint.load(tmp_path / "parent" / "frames" / "latest.pt")["generator"]
    run(tmp_path / "child", "--stage", "frames", "--data", "stream", "--init-frames",
        str(tmp_path / "parent" / "frames" / "latest.pt"), "--d-warmup", "2")  # fmt: skip
    folder = tmp_path / "child" / "frames"
    weights = [k for k, v in parent.items() if v.is_floating_point() and "running" not in k]
    at_2, at_4 = (checkpoint.load(folder / f"checkpoint-{s:07d}.pt") for s in (2, 4))
    assert all(torch.equal(at_2["generator"][k], parent[k]) for k in weights)  # held while D warms up
    assert not all(torch.equal(at_4["generator"][k], parent[k]) for k in weights)  # then trained
    rows = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["loss_g"]) for r in rows)  # the generator's loss is still measured
    with pytest.raises(SystemExit, match="d_warmup"):
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--d-warmup", "-1")


def test_generator_learning_rate_ramp():
    assert [generator_lr(3e-4, 0, u) for u in (-5, 0, 7)] == [3e-4] * 3  # off: the plain rate
    ramp = [generator_lr(4e-4, 4, u) for u in range(-2, 6)]
    assert ramp == pytest.approx([1e-4, 1e-4, 1e-4, 2e-4, 3e-4, 4e-4, 4e-4, 4e-4])  # held, rising, then flat


def test_lr_ramp_runs_after_the_warm_up_and_resumes_alike(tmp_path):
    args = ("--stage", "frames", "--data", "stream", "--d-warmup", "1", "--lr-ramp", "2", "--lr-g", "2e-4")
    run(tmp_path / "once", *args)
    run(tmp_path / "twice", *args, "--steps", "2")
    run(tmp_path / "twice", *args, "--resume")
    rows = [json.loads(x) for x in (tmp_path / "once" / "frames" / "stats.jsonl").read_text().splitlines()]
    assert [r["lr_g"] for r in rows] == pytest.approx([1e-4, 1e-4, 2e-4, 2e-4])  # step 1: D only
    a, b = (checkpoint.load(tmp_path / f / "frames" / "latest.pt")["generator"] for f in ("once", "twice"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(SystemExit, match="lr_ramp"):
        run(tmp_path / "bad", "--stage", "video", "--data", "stream", "--lr-ramp", "-1")


def test_temporal_std_flag_reaches_the_video_discriminators(tmp_path, capsys):
    run(tmp_path, "--stage", "all", "--data", "stream", "--temporal-std")
    ckpt = checkpoint.load(tmp_path / "video" / "latest.pt")
    assert ckpt["config"]["temporal_std"] is True and ckpt["step"] == 4
    head = ckpt["discriminators"]["head.weight"]  # (K, C + minibatch std + temporal std, *kernel)
    assert head.shape[1] == 3 * ckpt["config"]["d_width"] + 2
    with pytest.raises(SystemExit):
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--temporal-std")
    assert "--temporal-std is a setting of the video stage" in capsys.readouterr().err


def test_anchor_fine_tunes_under_a_frozen_parent_and_needs_one(tmp_path):
    run(tmp_path / "parent", "--stage", "frames", "--data", "stream")
    parent_path = tmp_path / "parent" / "frames" / "latest.pt"
    parent = checkpoint.load(parent_path)["generator"]
    run(tmp_path / "child", "--stage", "frames", "--data", "stream", "--init-frames", str(parent_path),
        "--anchor", "2", "--balls", "1")  # fmt: skip
    folder = tmp_path / "child" / "frames"
    rows = [json.loads(line) for line in (folder / "stats.jsonl").read_text().splitlines()]
    assert rows[0]["anchor"] == 0.0  # step 1: G_F is the parent, nothing brighter than itself
    assert all(r["anchor"] >= 0 and np.isfinite(r["anchor"]) for r in rows)
    child = checkpoint.load(folder / "latest.pt")
    assert child["config"]["anchor"] == 2.0
    weights = [k for k, v in parent.items() if v.is_floating_point() and "running" not in k]
    assert not all(torch.equal(child["generator"][k], parent[k]) for k in weights)  # G_F trained
    after = checkpoint.load(parent_path)["generator"]
    assert all(torch.equal(after[k], parent[k]) for k in parent)  # the frozen parent: its file untouched
    with pytest.raises(SystemExit, match="anchor needs init_frames"):
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--anchor", "1")


def test_ema_keeps_a_moving_average_that_stage_2_and_loaders_use_and_resumes_alike(tmp_path):
    from training.build import build_frame_generator, load_frame_generator

    args = ("--stage", "frames", "--data", "stream", "--checkpoint-every", "1", "--keep-checkpoints", "9")
    run(tmp_path / "plain", *args)
    run(tmp_path / "avg", *args, "--ema", "0.5")
    folder = tmp_path / "avg" / "frames"
    plain = load_state(tmp_path / "plain" / "frames" / "latest.pt")
    assert_same_state(load_state(folder / "latest.pt"), plain)  # the average leaves training as it was
    # average_s = 0.5 average_(s-1) + 0.5 weights_s from the first weights; buffers are the latest weights'
    first = build_frame_generator(make_config("frames", "smoke")).state_dict()
    average = {k: v.clone() for k, v in first.items()}
    for step in range(1, 5):
        ckpt = checkpoint.load(folder / f"checkpoint-{step:07d}.pt")
        for k, v in ckpt["generator"].items():
            average[k] = 0.5 * average[k] + 0.5 * v if v.is_floating_point() and "running" not in k else v
            assert torch.allclose(ckpt[checkpoint.AVERAGE][k].float(), average[k].float(), atol=1e-6), (step, k)
    kept = ckpt[checkpoint.AVERAGE]
    assert not torch.equal(kept["fc.weight"], plain["fc.weight"])
    gf, _, _ = load_frame_generator(folder / "latest.pt")  # evaluation and export load the average
    assert_same_state(gf.state_dict(), kept)
    slim = checkpoint.slim(folder / "latest.pt", tmp_path / "slim.pt")
    assert_same_state(load_frame_generator(slim)[0].state_dict(), kept)
    run(tmp_path / "avg", "--stage", "video", "--data", "stream")  # stage 2 runs over the average
    assert_same_state(load_state(tmp_path / "avg" / "video" / "latest.pt", "frames_generator"), kept)
    run(tmp_path / "twice", *args, "--ema", "0.5", "--steps", "2")
    run(tmp_path / "twice", *args, "--ema", "0.5", "--resume")
    assert_same_state(load_state(tmp_path / "twice" / "frames" / "latest.pt", checkpoint.AVERAGE), kept)
    with pytest.raises(SystemExit, match="ema"):
        run(tmp_path / "bad", "--stage", "frames", "--data", "stream", "--ema", "1")


def test_amp_computes_in_bfloat16_exactly_where_the_device_has_it():
    from training.loop import autocast, native_bf16

    cpu = torch.device("cpu")
    conv, x = torch.nn.Conv2d(1, 4, 3), torch.randn(2, 1, 8, 8)
    with autocast(cpu, False):
        assert conv(x).dtype == torch.float32
    with autocast(cpu, True):  # bfloat16 only where it is native: emulated, it is slower than float32
        assert conv(x).dtype == (torch.bfloat16 if native_bf16(cpu) else torch.float32)


def test_amp_trains_float32_weights_and_resumes_exactly(tmp_path, capsys):
    """--amp on the CPU: the plan says what arithmetic runs, the weights and checkpoints stay float32,
    the step differs from the float32 one where bfloat16 is native, and a resume continues exactly."""
    from training.loop import native_bf16

    run(tmp_path / "f32", "--stage", "frames", "--steps", "4")
    run(tmp_path / "a", "--stage", "frames", "--steps", "4", "--amp")
    plan = capsys.readouterr().out
    native = native_bf16(torch.device("cpu"))
    assert ("bfloat16 autocast (--amp)" if native else "no native bfloat16") in plan
    a, f32 = (load_state(tmp_path / d / "frames" / "latest.pt") for d in ("a", "f32"))
    assert all(v.dtype == torch.float32 for k, v in a.items() if v.is_floating_point())
    differs = any(not torch.equal(a[k], f32[k]) for k in a)
    assert differs == native
    run(tmp_path / "b", "--stage", "frames", "--steps", "2", "--amp")
    run(tmp_path / "b", "--stage", "frames", "--steps", "4", "--amp", "--resume")
    assert_same_state(a, load_state(tmp_path / "b" / "frames" / "latest.pt"))
