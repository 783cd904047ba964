"""Training in several processes (training/distributed.py): two gloo processes train like one at the same
global batch, and `torchrun -m training.run` writes its files once and resumes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from training.config import make_config
from training.distributed import World
from training.loop import Stage, fit
from training.networks import DiscriminatorEnsemble

ROOT = Path(__file__).resolve().parent.parent
STEPS = 3


def _toy_stage(folder: Path) -> Stage:
    """A stage with no statistic across the batch (no batch norm, no minibatch stddev), so that the
    math of a sharded step is the math of a whole one; instance noise and Jacobian clamping (along
    steepest directions: a per-sample power iteration) on.
    (The real optimizers, with the real networks, run in the torchrun test below.)"""
    cfg = make_config("frames", "smoke", dict(minibatch_std=False, instance_noise=0.1, jacobian_clamp=0.5,
                                               jc_power=1, steps=STEPS, batch=8, checkpoint_every=2))  # fmt: skip
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(cfg.latent, 900), nn.Tanh(), nn.Unflatten(1, (1, 30, 30)))
    disc = DiscriminatorEnsemble(kind="frame", count=4, width=4, seed=1)

    def real(step: int) -> torch.Tensor:
        return torch.rand(cfg.batch, 1, 30, 30, generator=torch.Generator().manual_seed(step)) * 2 - 1

    stage = Stage("frames", cfg, folder, torch.device("cpu"), gen, gen, disc, real, lambda step: {})
    # plain SGD: an update linear in the gradient keeps float rounding at rounding size (RMSprop's
    # g / sqrt(mean g^2) turns the rounding of a near-zero gradient into a full step)
    stage.opt_g = torch.optim.SGD(gen.parameters(), lr=0.05)
    stage.opt_d = torch.optim.SGD(disc.parameters(), lr=0.05)
    return stage


def _rank(rank: int, size: int, port: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size)
    try:
        stage = fit(_toy_stage(Path(out) / "run"), progress=False, world=World(rank, size))
        if rank == 0:
            torch.save({"g": stage.generator.state_dict(), "d": stage.disc.state_dict()}, Path(out) / "state.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shard_splits_a_global_batch():
    x = torch.arange(8)
    assert World(0, 2).shard(x).tolist() == [0, 1, 2, 3] and World(1, 2).shard(x).tolist() == [4, 5, 6, 7]
    assert World().shard(x) is x
    with pytest.raises(ValueError, match="does not split"):
        World(0, 3).shard(x)


def test_two_processes_train_like_one(tmp_path):
    one = fit(_toy_stage(tmp_path / "one"), progress=False)
    torch.multiprocessing.spawn(_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    two = torch.load(tmp_path / "state.pt")
    assert one.step == STEPS
    for name, want in [("g", one.generator.state_dict()), ("d", one.disc.state_dict())]:
        for key, value in want.items():
            torch.testing.assert_close(two[name][key], value, rtol=0, atol=2e-6, msg=f"{name}.{key}")
    moved = _toy_stage(tmp_path / "fresh").generator.state_dict()
    assert not torch.allclose(moved["0.weight"], one.generator.state_dict()["0.weight"])  # it did train
    # rank 0 alone wrote the run: one stats line per step, checkpoints at 2 and 3
    rows = [json.loads(line) for line in (tmp_path / "run" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*.pt")) == [
        "checkpoint-0000002.pt",
        "checkpoint-0000003.pt",
    ]


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "training.run"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_torchrun_trains_both_stages_writes_once_and_resumes(tmp_path):
    base = ["--preset", "smoke", "--data", "stream", "--out", str(tmp_path), "--no-progress"]
    done = _torchrun("--stage", "all", *base)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("[frames] done: step 4") == 1 and done.stdout.count("[video] done: step 4") == 1
    assert "processes: 2" in done.stdout
    for stage in ("frames", "video"):
        assert (tmp_path / stage / "latest.pt").is_file()
    again = _torchrun("--stage", "video", *base, "--resume", "--steps", "6")
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("resumed video from") == 1
    steps = [json.loads(line)["step"] for line in (tmp_path / "video" / "stats.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    ckpt = torch.load(tmp_path / "video" / "latest.pt", weights_only=False)
    assert ckpt["step"] == 6


def test_torchrun_runs_the_clamp_along_several_directions_and_the_path_length_penalty(tmp_path):
    """The six-direction clamp and the path-length penalty draw G_F through the plain module (a double
    backward does not go through DistributedDataParallel); their gradients still reach both ranks
    alike. Each rank takes its clamp's samples and the penalty's batch mean from its own slice, so
    these two are not the one-process math; they run, and rank 0 logs them."""
    args = ["--stage", "frames", "--preset", "smoke", "--data", "stream", "--out", str(tmp_path), "--no-progress",
            "--jacobian-clamp", "1", "--jc-power", "1", "--jc-directions", "2", "--path-length", "1",
            "--pl-every", "1", "--log-every", "1"]  # fmt: skip
    done = _torchrun(*args)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "frames" / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["path_length"] >= 0 and r["jacobian_clamp"] >= 0 for r in rows)
    ckpt = torch.load(tmp_path / "frames" / "latest.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in ckpt["generator"].values() if v.is_floating_point())
