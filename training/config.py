"""Training configuration: one frozen dataclass per stage, with named presets, and the one mapping
between config fields and command-line flags (``add_flags``, ``flags_of``).

`paper` is the paper's setting exactly; `cpu` is the shipped recipe, reduced to train on a 2-core
CPU (stage 1 ~40 min, stage 2 ~15 min; with the anti-collapse minibatch-stddev feature: plain
settings collapse); `smoke`
runs the whole pipeline in seconds for tests. Every field can be overridden from the command line
(`python -m training.run --help` lists them).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

OPTIMIZERS = ("rmsprop", "adam")
G_LOSS_MODES = ("sum", "hypervolume")  # how the K generator losses combine (training/losses.py)
ZF_PATHS = ("absolute", "residual", "steady", "inertial")  # how G_V writes its path of z_F (training/networks.py)
D_INPUTS = ("frames", "diffs", "frames+diffs", "diffs+accel")  # what a video discriminator sees (training/networks.py)
FRAMES, VIDEO = "frames", "video"


def _f(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class StageConfig:
    """Fields both stages share."""

    preset: str = _f("paper", "preset the other values started from")
    balls: int = _f(3, "balls per sequence in the training data")
    seed: int = _f(10, "seed of weights, projections, noise and batches (paper: 10)")
    latent: int = _f(100, "size of z (G_F's input; also G_V's z_v)")
    batch: int = _f(64, "batch size")
    lr_g: float = _f(3e-4, "generator learning rate")
    lr_d: float = _f(3e-4, "discriminator learning rate")
    lr_ramp: int = _f(
        0,
        "the generator's learning rate rises linearly from 0 to lr_g over its first N updates (RMSprop's "
        "first updates are ~10x lr: it has no bias correction); 0: off",
    )
    optimizer: str = _f("rmsprop", f"optimizer of generator and discriminators: {', '.join(OPTIMIZERS)}")
    epochs: float = _f(50.0, "passes over the data set's sequences (unless --steps)")
    steps: int | None = _f(None, "total optimisation steps; overrides --epochs")
    g_loss: str = _f("sum", f"how the K generator losses combine: {', '.join(G_LOSS_MODES)}")
    d_count: int = _f(48, "number of discriminators K")
    d_width: int = _f(256, "channels of each discriminator's first layer")
    minibatch_std: bool = _f(False, "append the batch-stddev feature to each discriminator (anti-collapse)")
    spectral_norm: bool = _f(False, "spectral normalisation of every discriminator layer (per discriminator)")
    data_sequences: int = _f(100_000, "sequences of the data set: generated when no --data; a --data file sets it")
    data_length: int = _f(128, "frames per sequence of the data set: generated when no --data; a --data file sets it")
    data_seed: int = _f(10, "seed of the generated data set (paper: 10); --seed leaves the data as they are")
    log_every: int = _f(50, "steps between stats.jsonl lines")
    eval_every: int = _f(1000, "steps between Table 1 metrics on a fixed batch")
    sample_every: int = _f(1000, "steps between sample images")
    checkpoint_every: int = _f(1000, "steps between checkpoints")
    keep_checkpoints: int = _f(3, "checkpoint-<step>.pt files kept (latest.pt is always kept)")
    amp: bool = _f(False, "bfloat16 autocast (CUDA, or a CPU with AVX512-BF16/AMX; float32 elsewhere)")
    ema: float = _f(
        0.0,
        "decay of an exponential moving average of the generator's weights, updated after every generator "
        "step and kept in checkpoints beside them; evaluation, export and stage 2 use the average "
        "(e.g. 0.995: a half-life of ~140 steps); 0: off",
    )
    instance_noise: float = _f(0.0, "std of Gaussian noise added to every discriminator input, real and fake")
    mode_seeking: float = _f(
        0.0, "weight of the mode-seeking term (MSGAN, Mao et al. 2019) added to the generator loss; 0: off"
    )
    branch: str = _f(
        "",
        "start this run (a new --out) from a full checkpoint of the same stage: its weights, optimizer states "
        "and step, under this config (the fields it changes are printed); training continues to --steps",
    )

    @property
    def steps_per_epoch(self) -> int:
        """Batches in one pass over the data set's sequences (a last, partial batch is not drawn)."""
        return max(1, self.data_sequences // self.batch)

    @property
    def total_steps(self) -> int:
        if self.steps is not None:
            return self.steps
        return max(1, math.ceil(self.epochs * self.steps_per_epoch))

    def __post_init__(self) -> None:
        positive = ["balls", "latent", "batch", "d_count", "d_width", "data_sequences", "data_length"]
        positive += ["log_every", "eval_every", "sample_every", "checkpoint_every", "keep_checkpoints"]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.steps is not None and self.steps < 0:
            raise ValueError(f"steps must be non-negative, got {self.steps}")
        if self.epochs <= 0:
            raise ValueError(f"epochs must be positive, got {self.epochs}")
        if self.lr_g <= 0 or self.lr_d <= 0:
            raise ValueError("learning rates must be positive")
        if self.lr_ramp < 0:
            raise ValueError(f"lr_ramp must be non-negative, got {self.lr_ramp}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, not {self.optimizer!r}")
        if self.g_loss not in G_LOSS_MODES:
            raise ValueError(f"g_loss must be one of {G_LOSS_MODES}, not {self.g_loss!r}")
        if self.seed < 0 or self.data_seed < 0:
            raise ValueError(f"seeds must be non-negative, got {self.seed} and data seed {self.data_seed}")
        if self.instance_noise < 0:
            raise ValueError(f"instance_noise must be non-negative, got {self.instance_noise}")
        if self.mode_seeking < 0:
            raise ValueError(f"mode_seeking must be non-negative, got {self.mode_seeking}")
        if not 0 <= self.ema < 1:
            raise ValueError(f"ema must be in [0, 1), got {self.ema}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FramesConfig(StageConfig):
    """Stage 1: G_F against K frame discriminators."""

    g_width: int = _f(1024, "channels of G_F's widest layer (paper: 1024)")
    g_folds: int = _f(
        0,
        "G_F's folds: N learned projections of z through a triangle wave (period 4), added into its first layer, "
        "so that a straight walk in z can come back (a ball can cross the frame and return); they start silent "
        "(output weights zero), so a fine-tune (--init-frames) from a G_F without them starts as its parent; 0: off",
    )
    g_fold_scale: float = _f(1.0, "G_F's folds: the projections' standard deviation over the prior at the start")
    g_fold_span: int = _f(
        0,
        "with --g-folds and --init-frames: draw the folds' projections inside the parent G_F's K steepest "
        "directions (top eigenvectors of J^T J averaged over the prior, J = dG_F/dz: where the parent moves its "
        "balls, 2 per ball) instead of over all of z; 0: all of z",
    )
    g_coords: bool = _f(
        False,
        "CoordConv in G_F (Liu et al. 2018): every transposed convolution also reads two channels holding each "
        "pixel's row and column in [-1, 1], so G_F can place a ball by arithmetic on its features (a position "
        "that moves evenly with z) rather than by which features fire where; off: the paper's G_F",
    )
    init_frames: str = _f("", "start G_F from this frames checkpoint's generator (fine-tuning; discriminators fresh)")
    d_warmup: int = _f(
        0, "first steps in which only the discriminators train, G_F's weights held (fine-tuning against fresh ones)"
    )
    jacobian_clamp: float = _f(0.0, "weight of Jacobian clamping (Odena et al. 2018) in G_F's loss; 0: off")
    jc_min: float = _f(2.0, "Jacobian clamping: smallest |G(z + d) - G(z)| / |d| left unpenalised")
    jc_max: float = _f(6.0, "Jacobian clamping: largest |G(z + d) - G(z)| / |d| left unpenalised")
    jc_eps: float = _f(0.5, "Jacobian clamping: the norm of the random step d in z")
    jc_power: int = _f(
        0,
        "Jacobian clamping along G_F's steepest directions: each random d is first turned by N steps of power "
        "iteration (d <- J^T J d, norm kept), so the band bounds the largest gain at z; 0: random directions",
    )
    jc_directions: int = _f(
        0,
        "Jacobian clamping along G_F's K steepest directions at each z at once (K random steps turned by "
        "--jc-power steps of subspace iteration, then to G_F's singular directions there; K = 2 x balls "
        "finds every way the balls move), so the band bounds each of those gains; on the first batch / K "
        "samples, as many steps as one per sample; 0: one step per sample",
    )
    gain_steady: float = _f(
        0.0,
        "with --jacobian-clamp: weight of a penalty on G_F's gain changing along a straight walk, the mean of "
        "(log |G(z+2d) - G(z+d)| - log |G(z+d) - G(z)|)^2 over the clamp's steps d (scale-free: the band keeps "
        "the gain's size); where the gain changes from one step to the next, a G_V's balls change speed; 0: off",
    )
    path_length: float = _f(
        0.0,
        "weight of path-length regularisation in G_F's loss (StyleGAN2's, relative to the batch: the spread of "
        "|J^T y| over z and random images y, J = dG_F/dz; evens G_F's gain over z and directions); 0: off",
    )
    pl_every: int = _f(4, "path-length regularisation on every N-th step only, its weight times N (lazy, as StyleGAN2)")
    anchor: float = _f(
        0.0,
        "with --init-frames: weight of a penalty on G_F's pixels brighter than the parent G_F's at the same z "
        "(balls only where the parent drew one, so a fine-tuned G_F keeps the parent's paths); 0: off",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.g_width < 4 or self.g_width % 4:
            raise ValueError(f"g_width must be a positive multiple of 4, got {self.g_width}")
        if self.g_folds < 0 or self.g_fold_scale <= 0:
            raise ValueError(f"g_folds must be >= 0 and g_fold_scale > 0, got {self.g_folds} and {self.g_fold_scale}")
        if self.g_fold_span and not (self.g_folds and self.init_frames and 0 < self.g_fold_span <= self.latent):
            raise ValueError(f"g_fold_span needs --g-folds, --init-frames and 0 < K <= latent, got {self.g_fold_span}")
        if self.d_warmup < 0:
            raise ValueError(f"d_warmup must be non-negative, got {self.d_warmup}")
        if self.jacobian_clamp < 0 or self.jc_eps <= 0 or not 0 <= self.jc_min <= self.jc_max:
            raise ValueError("jacobian_clamp must be >= 0, jc_eps > 0 and 0 <= jc_min <= jc_max")
        if self.jc_power < 0:
            raise ValueError(f"jc_power must be non-negative, got {self.jc_power}")
        if self.jc_directions < 0 or (self.jc_directions > 0 and self.jc_power < 1):
            raise ValueError(f"jc_directions must be >= 0 and needs jc_power >= 1, got {self.jc_directions}")
        if self.gain_steady < 0 or (self.gain_steady > 0 and self.jacobian_clamp <= 0):
            raise ValueError(f"gain_steady must be >= 0 and needs --jacobian-clamp, got {self.gain_steady}")
        if self.path_length < 0 or self.pl_every < 1:
            raise ValueError(f"path_length must be >= 0 and pl_every >= 1, got {self.path_length}, {self.pl_every}")
        if self.init_frames and self.branch:
            raise ValueError("init_frames and branch both set G_F's starting weights: give one")
        if self.anchor < 0:
            raise ValueError(f"anchor must be non-negative, got {self.anchor}")
        if self.anchor > 0 and not self.init_frames:
            raise ValueError("anchor needs init_frames: the parent G_F it anchors to")


@dataclass(frozen=True)
class VideoConfig(StageConfig):
    """Stage 2: G_V over the frozen G_F against K video discriminators."""

    video_length: int = _f(30, "frames per generated video")
    fc: tuple[int, ...] = _f((512, 1024, 2048), "G_V's dense encoder widths, comma-separated")
    seq_features: int = _f(128, "features per time step fed to the LSTM")
    lstm_hidden: int = _f(256, "LSTM units per direction")
    lstm_layers: int = _f(2, "stacked bidirectional LSTM layers")
    zf_scale: float = _f(1.0, "scale of G_V's tanh outputs z_F (paper: 1)")
    zf_sphere: bool = _f(
        False,
        "absolute path: rescale each z_F to norm zf_scale * sqrt(latent), where N(0, I) samples lie; residual "
        "steady and inertial paths: rescale each z_F to the norm of z_v, so the walk keeps to its start's shell",
    )
    zf_path: str = _f(
        "absolute",
        "absolute: z_F = tanh(...) (paper); residual: z_F,0 = z_v, then steps of zf_step * tanh; steady: "
        "z_F,0 = z_v, then steps of one length per video (at most zf_step * sqrt(latent)), directions free; "
        "inertial: a residual path whose every step is a gated mix (per coordinate, nearly closed at the start) "
        "of the step before and a fresh one, so the walk coasts unless G_V changes course",
    )
    zf_step: float = _f(
        0.1,
        "largest change per coordinate and frame of a residual path; steady: the step length's bound / sqrt(latent)",
    )
    zf_look: bool = _f(
        False,
        "residual path only: G_V sees each frame its path renders on the frozen G_F (and its change) and "
        "scales its next step by what it saw",
    )
    d_inputs: str = _f(
        "frames", f"what each video discriminator sees: {', '.join(D_INPUTS)} (frame differences; paper: frames)"
    )
    temporal_std: bool = _f(
        False, "each video discriminator's head also sees how much its first layer's features vary over time"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("video_length", "seq_features", "lstm_hidden", "lstm_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if len(self.fc) == 0 or min(self.fc) < 1:
            raise ValueError(f"fc must list positive widths, got {self.fc}")
        if self.video_length < 2 or self.video_length > self.data_length:
            raise ValueError(f"video_length must be in 2..data_length ({self.data_length}), got {self.video_length}")
        if self.zf_scale <= 0:
            raise ValueError(f"zf_scale must be positive, got {self.zf_scale}")
        if self.zf_path not in ZF_PATHS:
            raise ValueError(f"zf_path must be one of {ZF_PATHS}, not {self.zf_path!r}")
        if self.zf_step <= 0:
            raise ValueError(f"zf_step must be positive, got {self.zf_step}")
        if self.zf_look and self.zf_path != "residual":
            raise ValueError(f"zf_look needs zf_path residual, not {self.zf_path!r}")
        if self.zf_look and self.zf_sphere:
            raise ValueError("zf_look and zf_sphere do not go together (a looking G_V's path is not rescaled)")
        if self.d_inputs not in D_INPUTS:
            raise ValueError(f"d_inputs must be one of {D_INPUTS}, not {self.d_inputs!r}")


_SMOKE = dict(
    batch=8, d_count=4, d_width=4, minibatch_std=True, steps=4, data_sequences=16, data_length=32,
    log_every=1, eval_every=2, sample_every=2, checkpoint_every=2,
)  # fmt: skip

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        FRAMES: dict(),
        VIDEO: dict(batch=8, lr_g=2e-4, lr_d=2e-4, epochs=15.0, d_count=16),
    },
    # the shipped recipe (README "Results"; docs/training-log.md #8, #9, #11, #13): G_F 7,000 steps with
    # Jacobian clamping in [6, 12] (#13: more right counts in fewer steps, a more even gain); G_V
    # with a residual path of small steps, instance noise, slower discriminators that see frame
    # differences, batch 16, training seed 12, 1,000 steps (picked by training.pick on tuning seed
    # 1234 among runs and checkpoints every 250 steps)
    "cpu": {
        FRAMES: dict(
            g_width=128, d_width=16, minibatch_std=True, steps=7_000, data_sequences=10_000,
            jacobian_clamp=1.0, jc_min=6.0, jc_max=12.0,
            eval_every=500, sample_every=500, checkpoint_every=500,
        ),
        # G_V reduced from 13.0M to 1.8M parameters: a shipped variant's ONNX files stay near 10 MB
        VIDEO: dict(
            batch=16, lr_g=2e-4, lr_d=5e-5, d_count=16, d_width=16, minibatch_std=True, steps=1000,
            data_sequences=10_000, eval_every=250, sample_every=250, checkpoint_every=250,
            fc=(256, 512, 1024), seq_features=32, lstm_hidden=64,
            zf_path="residual", zf_step=0.05, instance_noise=0.2, d_inputs="diffs", seed=12,
        ),
    },
    "smoke": {
        FRAMES: dict(_SMOKE, g_width=16),
        VIDEO: dict(_SMOKE, fc=(32, 64), seq_features=16, lstm_hidden=16),
    },
}  # fmt: skip


def make_config(stage: str, preset: str, overrides: dict[str, Any] | None = None) -> StageConfig:
    """The config of a stage from a preset and overrides (None values are ignored)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    cls = config_class(stage)
    known = field_names(stage)
    values = {**PRESETS[preset][stage], "preset": preset}
    given = {k: v for k, v in (overrides or {}).items() if v is not None and k in known and k != "preset"}
    if "epochs" in given and "steps" not in given:
        values["steps"] = None  # --epochs replaces the preset's step count
    values.update(given)
    return cls(**values)


def config_from_dict(stage: str, values: dict[str, Any]) -> StageConfig:
    cls = config_class(stage)
    known = field_names(stage)
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown {stage} config fields: {', '.join(sorted(unknown))}")
    values = dict(values)
    if "fc" in values:
        values["fc"] = tuple(values["fc"])
    return cls(**values)


def differences(a: StageConfig, b: StageConfig, ignore: tuple[str, ...] = ()) -> list[str]:
    """Fields whose values differ, as 'name: a -> b'."""
    da, db = a.to_dict(), b.to_dict()
    return [f"{k}: {da[k]!r} -> {db[k]!r}" for k in da if k not in ignore and da[k] != db.get(k)]


# ---------------------------------------------------------------- command-line flags


def config_class(stage: str) -> type[StageConfig]:
    return FramesConfig if stage == FRAMES else VideoConfig


def flag(name: str) -> str:
    """The command-line flag of a config field: lstm_hidden -> --lstm-hidden."""
    return "--" + name.replace("_", "-")


def field_names(stage: str) -> set[str]:
    return {f.name for f in fields(config_class(stage))}


def _parse_widths(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per config field of either stage (``preset`` aside, which the CLI chooses), default None."""
    seen: set[str] = set()
    for cls in (FramesConfig, VideoConfig):
        for f in fields(cls):
            if f.name in seen or f.name == "preset":
                continue
            seen.add(f.name)
            kind = str(f.type).replace(" | None", "")
            if kind == "bool":
                parser.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, help=f.metadata["help"])
            elif kind.startswith("tuple"):
                parser.add_argument(flag(f.name), type=_parse_widths, help=f.metadata["help"])
            else:
                parser.add_argument(flag(f.name), type={"int": int, "float": float, "str": str}[kind],
                                    help=f.metadata["help"])  # fmt: skip


def flags_of(cfg: StageConfig) -> list[str]:
    """The flags that turn the config's preset into ``cfg`` (every field that differs from the preset)."""
    stage = FRAMES if isinstance(cfg, FramesConfig) else VIDEO
    base = make_config(stage, cfg.preset)
    out = []
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        if f.name == "preset" or value == getattr(base, f.name):
            continue
        if isinstance(value, bool):
            out.append(flag(f.name) if value else "--no-" + flag(f.name)[2:])
        elif isinstance(value, tuple):
            out.append(f"{flag(f.name)} {','.join(str(v) for v in value)}")
        else:
            out.append(f"{flag(f.name)} {value}")
    return out


def unused_by(stage: str, given: set[str]) -> list[str]:
    """Config fields among ``given`` that ``stage`` does not have, as messages naming the flag."""
    other = VIDEO if stage == FRAMES else FRAMES
    return [
        f"{flag(name)} is a setting of the {other} stage; --stage {stage} does not use it"
        for name in sorted(given & field_names(other) - field_names(stage))
    ]
