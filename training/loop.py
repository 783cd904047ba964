"""The GAN step and the training loop both stages share.

The loop owns the optimizers, the device and the randomness. Randomness is stateless per step:
the noise of step s comes from a generator seeded with (seed, s) and the real batch is a function
of (seed, epoch, position), so a resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from training import checkpoint, losses, watch
from training.config import StageConfig
from training.distributed import ONE, World


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cpu', 'cuda' or 'cuda:N' force one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return device


def make_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.5, 0.999))
    raise ValueError(f"unknown optimizer {name!r}")


def step_noise(seed: int, step: int, batch: int, latent: int, device: torch.device) -> torch.Tensor:
    """z ~ N(0, I) for one step, (batch, latent): the same on every device and after a resume."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return torch.randn(batch, latent, generator=gen).to(device)


def instance_noise(
    seed: int, step: int, std: float, device: torch.device, world: World = ONE
) -> Callable[[torch.Tensor], torch.Tensor]:
    """x -> x + N(0, std^2) noise, from a generator seeded with (seed, step): resumable like step_noise.
    In a process group x is a rank's slice: the noise is drawn for the global batch and sliced."""
    if std == 0:
        return lambda x: x
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step + 500_000_000)

    def noisy(x: torch.Tensor) -> torch.Tensor:
        noise = torch.randn((x.shape[0] * world.size, *x.shape[1:]), generator=gen)
        return x + std * world.shard(noise).to(device)

    return noisy


def clamp_step(seed: int, step: int, batch: int, latent: int, norm: float, device: torch.device) -> torch.Tensor:
    """Jacobian clamping's random steps d in z, (batch, latent), each of norm ``norm``; resumable."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step + 700_000_000)
    d = torch.randn(batch, latent, generator=gen)
    return (d * (norm / d.norm(dim=1, keepdim=True))).to(device)


def power_step(generate: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """One power-iteration product J^T J d at each row of z (J = dG/dz there): J d by the finite
    difference G(z + d) - G(z), J^T by a backward pass to z. (B, latent) in, (B, latent) out."""
    at = z.detach().requires_grad_(True)
    with torch.enable_grad():
        drawn = generate(at)
        with torch.no_grad():
            change = generate(at + d) - drawn
        (turned,) = torch.autograd.grad((drawn.float() * change.float()).sum(), at)
    return turned


def steepest_step(
    generate: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, d: torch.Tensor, power: int
) -> torch.Tensor:
    """The steps ``d`` (B, latent) turned by ``power`` steps of power iteration toward the direction in
    which G changes most at each z: d <- J^T J d with J = dG/dz at z (J d by a finite difference along
    d, J^T by a backward pass to z), each row's norm kept. Jacobian clamping along the result bounds
    G's largest gain at z, the one a walk that follows G's steepest path meets. Carries no gradient."""
    norm = d.norm(dim=1, keepdim=True)
    for _ in range(power):
        turned = power_step(generate, z, d)
        d = turned * (norm / turned.norm(dim=1, keepdim=True).clamp_min(1e-12))
    return d.detach()


def steepest_directions(
    generate: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, d: torch.Tensor, power: int
) -> torch.Tensor:
    """The K steepest directions of G at each z: from the random steps ``d`` (B, K, latent), ``power``
    steps of subspace iteration (V <- J^T J V, then orthonormalised; J V by finite differences, J^T by
    a backward pass to z), then turned within the subspace to G's singular directions there (the
    right singular vectors of J V: orthogonal steps whose changes on screen are orthogonal too).
    Returns (B * K, latent), the K steps of each z in a row, each of d's norm; no gradient. A frame of
    b balls moves in 2b ways and G_F has about that many directions of gain (the rest are flat), so
    K = 2b and a few steps find them all; Jacobian clamping along them bounds every one of those
    gains, the smallest (a ball that barely moves for a step in z) as well as the largest."""
    b, k, latent = d.shape
    norm = d.norm(dim=2).mean()
    at_z = z.detach().repeat_interleave(k, dim=0)

    def rows(v: torch.Tensor) -> torch.Tensor:  # (B, latent, K) -> (B * K, latent) steps of length norm
        return norm * v.transpose(1, 2).reshape(b * k, latent)

    v = torch.linalg.qr(d.float().transpose(1, 2)).Q  # (B, latent, K), orthonormal columns
    for _ in range(power):
        v = torch.linalg.qr(power_step(generate, at_z, rows(v)).view(b, k, latent).transpose(1, 2)).Q
    with torch.no_grad():  # J V = W S U^T: the columns of V U are the singular directions in the subspace
        drawn, moved = generate(torch.cat([at_z, at_z + rows(v)])).float().chunk(2)  # one batch's statistics
        change = (moved - drawn).view(b, k, -1)
        v = v @ torch.linalg.svd(change, full_matrices=False).U
    return rows(v).detach()


def step_terms(
    cfg: StageConfig, step: int, device: torch.device, world: World = ONE
) -> tuple[Callable[[torch.Tensor], torch.Tensor], tuple[float, float, float, torch.Tensor, int] | None]:
    """The config's per-step extras of gan_step for ``step``: the instance noise, and the Jacobian
    clamp's (weight, low, high, d, power) where the stage clamps (else None); d is this rank's slice
    (random; gan_step turns it by ``power`` steps toward the steepest direction, ``steepest_step``)."""
    noisy = instance_noise(cfg.seed, step, cfg.instance_noise, device, world)
    if getattr(cfg, "jacobian_clamp", 0) <= 0:
        return noisy, None
    d = world.shard(clamp_step(cfg.seed, step, cfg.batch, cfg.latent, cfg.jc_eps, device))
    k = getattr(cfg, "jc_directions", 0)
    if k > 0:  # K steps for each of the first len(d) // K samples: as many steps as one per sample
        d = d[: max(len(d) // k, 1) * k] if len(d) >= k else d.repeat(k, 1)[:k]
        d = d.view(-1, k, cfg.latent)
    return noisy, (cfg.jacobian_clamp, cfg.jc_min, cfg.jc_max, d, cfg.jc_power)


def path_term(
    cfg: StageConfig, step: int, shape: tuple[int, ...], device: torch.device, world: World = ONE
) -> tuple[float, torch.Tensor] | None:
    """Path-length regularisation's (weight, y) for ``step`` where the stage regularises on this step
    (every ``pl_every``-th, the weight times ``pl_every``), else None. y: random images of N(0, 1/pixels)
    entries for the first half of this rank's slice of a batch shaped ``shape`` (StyleGAN2 halves the
    batch of its penalty too); seeded by the step, so resumable."""
    weight, every = getattr(cfg, "path_length", 0.0), getattr(cfg, "pl_every", 1)
    if weight <= 0 or (step + 1) % every:  # steps N-1, 2N-1, ...: the rows logged every multiple of N show it
        return None
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step + 800_000_000)
    y = world.shard(torch.randn(shape, generator=gen) / math.sqrt(math.prod(shape[2:])))
    return weight * every, y[: max(1, y.shape[0] // 2)].to(device)


def generator_lr(lr: float, ramp: int, updates: int) -> float:
    """The generator's learning rate for its update number ``updates`` (0-based): a linear rise from
    lr / ramp to lr over the first ``ramp`` updates, then lr (before its first update, during a
    discriminator warm-up: lr / ramp). A function of the step: resumable."""
    if ramp <= 0:
        return lr
    return lr * min(1.0, (max(updates, 0) + 1) / ramp)


@functools.cache
def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively: any CUDA device torch supports it on, or a CPU
    whose oneDNN kernels have bfloat16 instructions (AVX512-BF16, AMX); elsewhere bfloat16 is emulated
    and slower than float32. Asked once per device (autocast asks it several times a step)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, enabled: bool):
    """bfloat16 autocast on ``device`` when ``enabled`` and the device computes in bfloat16 natively
    (``native_bf16``); else no autocast (float32)."""
    if enabled and native_bf16(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def gan_step(
    generate: Callable[[torch.Tensor], torch.Tensor],
    disc: nn.Module,
    opt_g: torch.optim.Optimizer,
    opt_d: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    g_loss_mode: str,
    amp=contextlib.nullcontext,
    noisy: Callable[[torch.Tensor], torch.Tensor] = lambda x: x,
    mode_seeking: float = 0.0,
    clamp: tuple[float, float, float, torch.Tensor, int] | None = None,
    disc_g: nn.Module | None = None,
    train_g: bool = True,
    anchor: tuple[float, Callable[[torch.Tensor], torch.Tensor]] | None = None,
    path: tuple[float, torch.Tensor] | None = None,
    steady: float = 0.0,
) -> dict[str, float]:
    """One discriminator update (each of the K on its own loss) then one generator update.

    ``disc_g``: the discriminators for the generator's pass, when ``disc`` is a DistributedDataParallel
    wrapper (that pass trains no discriminator, so it goes through the plain module). ``noisy`` is
    applied to every discriminator input, real and fake (instance noise);
    ``mode_seeking`` > 0 adds that multiple of MSGAN's term to the generator loss; ``clamp`` =
    (weight, low, high, d, power) adds weight times Jacobian clamping with the step d (B, latent) in
    z, first turned by ``power`` power-iteration steps toward G's steepest direction at z; or, with
    d (n, K, latent), along G's K steepest directions at each of the first n z (``steepest_directions``).
    ``train_g=False``: the discriminators' update only (the generator's loss is measured, not
    followed), for a discriminator warm-up against a trained generator. ``anchor`` = (weight, parent)
    adds weight times the excess of the fakes' intensity over ``parent(z)`` (a frozen generator).
    ``path`` = (weight, y) adds weight times path-length regularisation at the first len(y) of z.
    ``steady`` > 0 (with ``clamp``) adds that multiple of ``losses.gain_steadiness`` along the clamp's
    steps: G at z + 2d too, drawn in the same batch as z and z + d.
    """
    with amp(), torch.set_grad_enabled(train_g):
        fake = generate(z)
    # discriminators: the sum of K independent losses gives each one its own gradient
    opt_d.zero_grad(set_to_none=True)
    with amp():  # real and fake in separate passes: each batch its own minibatch statistic
        real_logits, fake_logits = disc(noisy(real)), disc(noisy(fake.detach()))
    d_losses = losses.d_loss(real_logits.float(), fake_logits.float())  # (K,)
    d_losses.sum().backward()
    opt_d.step()
    # generator: no parameter gradients for the discriminators on this pass
    disc_g = disc if disc_g is None else disc_g
    row = {}
    if not train_g:
        with torch.no_grad(), amp():
            g_losses = losses.g_loss(disc_g(noisy(fake)).float())
    else:
        disc_g.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        with amp():
            logits = disc_g(noisy(fake))
        g_losses = losses.g_loss(logits.float())  # (K,)
        total = losses.combine(g_losses, g_loss_mode)
        if mode_seeking > 0:
            ms = losses.mode_seeking(fake.float(), z)
            total = total + mode_seeking * ms
            row["mode_seeking"] = ms.item()
        # the clamp's directions and the path penalty's double backward go through the plain module:
        # a process group's wrapper has nothing to sync there, and a double backward does not go through it
        plain = getattr(generate, "module", generate)
        if clamp is not None:
            weight, low, high, d, power = clamp
            start, drawn = z, fake
            with amp():
                if d.dim() == 3:  # (n, K, latent): the K steepest directions at each of the first n z
                    n, k = d.shape[:2]
                    d = steepest_directions(plain, z[:n], d, power)
                    start = z[:n].repeat_interleave(k, 0)
                    # G at the start and at the moved points in one batch: batch norm's statistics of
                    # n distinct z differ from the whole batch's, and that difference is no gain
                    points = [start, start + d, start + 2 * d] if steady > 0 else [start, start + d]
                    drawn, moved, *further = generate(torch.cat(points)).chunk(len(points))
                else:
                    d = steepest_step(plain, z, d, power) if power > 0 else d
                    points = [start + d, start + 2 * d] if steady > 0 else [start + d]
                    moved, *further = generate(torch.cat(points)).chunk(len(points))
            jc = losses.jacobian_clamp(drawn.float(), moved.float(), float(d.norm(dim=1).mean()), low, high)
            total = total + weight * jc
            row["jacobian_clamp"] = jc.item()
            if further:
                gs = losses.gain_steadiness(drawn.float(), moved.float(), further[0].float())
                total = total + steady * gs
                row["gain_steady"] = gs.item()
        if path is not None:
            weight, y = path
            at = z[: y.shape[0]].detach().requires_grad_(True)
            with amp():
                drawn = plain(at)
            pl = losses.path_length(drawn.float(), at, y)
            total = total + weight * pl
            row["path_length"] = pl.item()
        if anchor is not None:
            weight, parent = anchor
            with torch.no_grad(), amp():
                drawn = parent(z)
            excess = losses.parent_anchor(fake.float(), drawn.float())
            total = total + weight * excess
            row["anchor"] = excess.item()
        total.backward()
        opt_g.step()
        disc_g.requires_grad_(True)
    return {
        "loss_d": d_losses.mean().item(),
        "loss_g": g_losses.mean().item(),
        "d_real": torch.sigmoid(real_logits.float()).mean().item(),
        "d_fake": torch.sigmoid(fake_logits.float()).mean().item(),
        **row,
    }


@dataclass
class Stage:
    """What the loop needs of a stage; run.py builds one per stage."""

    name: str  # "frames" or "video"
    config: StageConfig
    folder: Path
    device: torch.device
    generator: nn.Module  # trained part: G_F, or G_V (+ frozen G_F)
    generate: nn.Module  # z -> fakes shaped like real batches
    disc: nn.Module
    real_batch: Callable[[int], torch.Tensor]  # step -> real batch on the device
    evaluate: Callable[[int], dict[str, Any]]  # step -> metrics (and writes samples)
    extra_state: dict[str, Any] = field(default_factory=dict)  # stored in every checkpoint
    frozen: nn.Module | None = None  # stage 2: the frozen G_F under the trained G_V
    parent: nn.Module | None = None  # stage 1 with --anchor: the frozen parent G_F
    opt_g: torch.optim.Optimizer | None = None
    opt_d: torch.optim.Optimizer | None = None
    average: nn.Module | None = None  # --ema: the moving average of the generator's weights
    step: int = 0

    def __post_init__(self) -> None:
        cfg = self.config
        params = [p for p in self.generator.parameters() if p.requires_grad]
        self.opt_g = make_optimizer(cfg.optimizer, params, cfg.lr_g)
        self.opt_d = make_optimizer(cfg.optimizer, self.disc.parameters(), cfg.lr_d)
        if cfg.ema > 0:  # starts at the generator's first weights (a fine-tune's: the parent's)
            self.average = copy.deepcopy(self.generator).requires_grad_(False)

    def state(self) -> dict[str, Any]:
        averaged = {} if self.average is None else {checkpoint.AVERAGE: self.average.state_dict()}
        return {
            "stage": self.name,
            "config": self.config.to_dict(),
            "generator": self.generator.state_dict(),
            **averaged,
            "discriminators": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            **self.extra_state,
        }

    def restore(self, ckpt: dict[str, Any]) -> None:
        self.generator.load_state_dict(ckpt["generator"])
        if self.average is not None:  # a branch that adds --ema starts the average at the weights
            self.average.load_state_dict(ckpt.get(checkpoint.AVERAGE, ckpt["generator"]))
        self.disc.load_state_dict(ckpt["discriminators"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.step = ckpt["step"]

    @torch.no_grad()
    def update_average(self) -> None:
        """average <- ema * average + (1 - ema) * weights; buffers (batch-norm statistics) copied."""
        if self.average is None:
            return
        for avg, live in zip(self.average.parameters(), self.generator.parameters(), strict=True):
            avg.lerp_(live, 1 - self.config.ema)
        for avg, live in zip(self.average.buffers(), self.generator.buffers(), strict=True):
            avg.copy_(live)

    @contextlib.contextmanager
    def averaged(self):
        """The generator holds the averaged weights inside this block (for evaluation), its own after."""
        if self.average is None:
            yield
            return
        own = {k: v.clone() for k, v in self.generator.state_dict().items()}
        self.generator.load_state_dict(self.average.state_dict())
        try:
            yield
        finally:
            self.generator.load_state_dict(own)

    def save(self) -> Path:
        return checkpoint.save(self.folder, self.state(), self.step, self.config.keep_checkpoints)


def fit(stage: Stage, progress: bool = True, world: World = ONE) -> Stage:
    """Train until config.total_steps, logging, evaluating, sampling and checkpointing as configured.

    Ctrl-C saves a checkpoint at the current step before exiting (with SystemExit 130). In a process
    group (``world``, training/distributed.py) each rank trains on its slice of every batch and rank 0
    alone writes.
    """
    cfg, total = stage.config, stage.config.total_steps
    if cfg.batch % world.size:
        raise SystemExit(f"--batch {cfg.batch} does not split over {world.size} processes")
    if world.main:
        stage.folder.mkdir(parents=True, exist_ok=True)
    stats_path = stage.folder / "stats.jsonl"
    amp = lambda: autocast(stage.device, cfg.amp)  # noqa: E731
    generate, disc = stage.generate, stage.disc
    if world.size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [stage.device.index] if stage.device.type == "cuda" else None
        generate = DistributedDataParallel(stage.generate, device_ids=ids)  # batch-norm buffers: rank 0's
        # the discriminators' buffers (the fixed projections; spectral norm's u, v, updated from weights
        # that every rank holds alike) are equal on every rank: nothing to broadcast
        disc = DistributedDataParallel(stage.disc, device_ids=ids, forward_sync_buffers=False)
    bar = None
    if progress and world.main and stage.step < total:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=stage.step, desc=stage.name, unit="step", dynamic_ncols=True)
    stage.generator.train()
    saved_at = stage.step
    board = watch.Board(stage.folder, stage.step) if world.main else None
    t_last, s_last = time.perf_counter(), stage.step
    try:
        while stage.step < total:
            real = world.shard(stage.real_batch(stage.step))
            z = world.shard(step_noise(cfg.seed, stage.step, cfg.batch, cfg.latent, stage.device))
            noisy, clamp = step_terms(cfg, stage.step, stage.device, world)
            warmup = getattr(cfg, "d_warmup", 0)
            train_g = stage.step >= warmup
            for group in stage.opt_g.param_groups:
                group["lr"] = generator_lr(cfg.lr_g, cfg.lr_ramp, stage.step - warmup)
            anchor = (cfg.anchor, stage.parent) if stage.parent is not None else None
            path = path_term(cfg, stage.step, (cfg.batch, *real.shape[1:]), stage.device, world)
            row = gan_step(
                generate,
                disc,
                stage.opt_g,
                stage.opt_d,
                real,
                z,
                cfg.g_loss,
                amp,
                noisy,
                cfg.mode_seeking,
                clamp,
                disc_g=stage.disc,
                train_g=train_g,
                anchor=anchor,
                path=path,
                steady=getattr(cfg, "gain_steady", 0.0),
            )
            if train_g:
                stage.update_average()
            if cfg.lr_ramp > 0:
                row["lr_g"] = stage.opt_g.param_groups[0]["lr"]
            stage.step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss_d=f"{row['loss_d']:.3f}", loss_g=f"{row['loss_g']:.3f}", refresh=False)
            done = stage.step == total
            if stage.step % cfg.log_every == 0 or done or stage.step % cfg.eval_every == 0:
                now = time.perf_counter()
                row = world.mean(row)
                row = {"step": stage.step, **row, "steps_per_s": (stage.step - s_last) / max(now - t_last, 1e-9)}
                if world.main:
                    evaluated = stage.step % cfg.eval_every == 0 or done
                    if evaluated:
                        with stage.averaged():
                            stage.generator.eval()
                            row.update(stage.evaluate(stage.step))
                            stage.generator.train()
                    with open(stats_path, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    board.scalars(row)
                    if evaluated:  # the curves and the samples the evaluation wrote
                        watch.redraw(stage.name, stats_path, stage.folder / "curves.png")
                        board.image("samples", stage.folder / f"samples-{stage.step:07d}.png", stage.step)
                        board.video("sample_videos", stage.folder / f"samples-{stage.step:07d}.gif", stage.step)
                t_last, s_last = time.perf_counter(), stage.step
            if stage.step % cfg.checkpoint_every == 0 or done:
                if world.main:
                    stage.save()
                saved_at = stage.step
    except KeyboardInterrupt:
        if bar is not None:
            bar.close()
        if stage.step != saved_at and world.main:
            path = stage.save()
            print(f"\ninterrupted: saved {path} at step {stage.step}; continue with --resume")
        raise SystemExit(130) from None
    if bar is not None:
        bar.close()
    if board is not None:
        board.close()
    world.barrier()  # the last checkpoint is on disk before any rank returns
    return stage
