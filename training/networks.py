"""The networks: frame generator G_F, sequence generator G_V, and the discriminator ensembles.

Sizes are keyword-only arguments; the `paper` preset (training/config.py) gives the paper's:
G_F 27.7M parameters, one frame discriminator 10.5M. Modules know nothing of optimizers or devices.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from training.config import D_INPUTS

Size = int | tuple[int, ...]


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv and linear weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


INERTIA_BIAS = -2.0  # the inertial path's gates start nearly closed: sigmoid(-2) ~ 0.12 of a fresh step


def triangle(x: torch.Tensor) -> torch.Tensor:
    """The triangle wave of period 4 through 0 with slope 1: x on [-1, 1], folded back beyond (1 at 1,
    0 at 2, -1 at 3, ...). Floor, abs and arithmetic only, so it exports to ONNX as it is."""
    u = (x + 1) / 4
    return 1 - (4 * (u - torch.floor(u)) - 2).abs()


class Coordinates(nn.Module):
    """CoordConv's extra input (Liu et al. 2018): two channels holding each pixel's row and column,
    evenly spaced over [-1, 1], put after the ``side`` x ``side`` feature map's channels. A layer
    that reads them can place what it draws by arithmetic on its features (a ramp that crosses zero
    where a ball's centre is) rather than by which of its features fire where."""

    def __init__(self, side: int) -> None:
        super().__init__()
        axis = torch.linspace(-1.0, 1.0, side)
        grid = torch.stack([axis.view(side, 1).expand(side, side), axis.view(1, side).expand(side, side)])
        self.register_buffer("grid", grid.unsqueeze(0), persistent=False)  # (1, 2, side, side): not a weight

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return torch.cat([h, self.grid.expand(h.shape[0], -1, -1, -1)], dim=1)


class FrameGenerator(nn.Module):
    """G_F: z (B, latent) -> frame (B, 1, 30, 30) in [-1, 1].

    Linear to (width, 2, 2), then transposed convolutions width -> width -> width/2 -> width/4
    (k4 s2 p1, BN, ReLU: 2 -> 4 -> 8 -> 16 pixels) and width/4 -> 1 (k4 s2 p2: 16 -> 30), tanh.
    With ``folds`` N > 0 the first layer also gets N projections of z through a triangle wave
    (``fold_in``: std ``fold_scale`` over the prior, random phase; ``fold_out``: zero at the start, so
    G_F starts as it would without them): a map that can fold a straight walk in z back on itself.
    With ``coords`` every transposed convolution also reads two coordinate channels (``Coordinates``).
    """

    size = 30  # side of the frames, fixed by the layer plan

    def __init__(
        self, *, latent: int = 100, width: int = 1024, folds: int = 0, fold_scale: float = 1.0, coords: bool = False
    ) -> None:
        super().__init__()
        if width % 4:
            raise ValueError(f"G_F width must be a multiple of 4, got {width}")
        self.latent, self.width, self.folds, self.coords = latent, width, folds, coords
        self.fc = nn.Linear(latent, width * 2 * 2, bias=False)
        self.bn0 = nn.BatchNorm2d(width)
        chans = [width, width, width // 2, width // 4]
        extra = 2 if coords else 0
        blocks: list[nn.Module] = []
        for side, c_in, c_out in zip((2, 4, 8), chans[:-1], chans[1:], strict=True):
            blocks += [Coordinates(side)] if coords else []
            blocks += [nn.ConvTranspose2d(c_in + extra, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out)]
            blocks += [nn.ReLU(True)]
        blocks += [Coordinates(16)] if coords else []
        blocks += [nn.ConvTranspose2d(chans[-1] + extra, 1, 4, 2, 2), nn.Tanh()]
        self.body = nn.Sequential(*blocks)
        dcgan_init(self)
        if folds:  # built after the rest is drawn: the rest has the weights it would have without folds
            self.fold_in = nn.Linear(latent, folds)
            self.fold_out = nn.Linear(folds, width * 2 * 2, bias=False)
            nn.init.normal_(self.fold_in.weight, 0.0, fold_scale / latent**0.5)
            nn.init.uniform_(self.fold_in.bias, -2.0, 2.0)  # a random phase within the period
            nn.init.zeros_(self.fold_out.weight)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z)
        if self.folds:
            h = h + self.fold_out(triangle(self.fold_in(z)))
        h = h.view(-1, self.width, 2, 2)  # (B, width, 2, 2)
        return self.body(F.relu(self.bn0(h)))  # (B, 1, 30, 30)


class SequenceGenerator(nn.Module):
    """G_V without the frame generator: z_v (B, latent) -> z_F (B, frames, frame_latent).

    Dense encoder latent -> fc[0] -> ... -> frames * seq_features (BN + ReLU each), read as a
    sequence (B, frames, seq_features), a 2-layer bidirectional LSTM, then Linear -> tanh per step.
    ``out_scale`` multiplies the tanh output (1 in the paper). ``sphere`` (not the paper's) then
    rescales each z_F to norm ``out_scale * sqrt(frame_latent)``: the shell where N(0, I) samples,
    the z that G_F was trained on, lie.

    ``path="residual"`` (not the paper's) writes the path as steps instead: z_F,0 = z_v (a prior
    sample, so the first frame is an ordinary G_F sample; needs latent == frame_latent) and
    z_F,t = z_F,t-1 + step * tanh(head(h_t)), so "move a little each frame" is the default and no
    output saturates into a hold or flips into a jump.

    ``path="steady"`` (not the paper's) is a residual path whose steps all have one length per video:
    z_F,t = z_F,t-1 + r * u_t / |u_t|, u_t = head(h_t) the direction, r = step * sqrt(frame_latent) *
    sigmoid(speed(mean_t h_t)) the video's speed in z (at most what a residual path's largest step
    can be). Real balls keep their speed between contacts (the data's total kinetic energy never
    changes): a G_V that cannot speed up or slow down in z is pushed toward that, not made to.

    ``path="inertial"`` (not the paper's) is a residual path whose steps keep going: z_F,t = z_F,t-1 +
    s_t, s_1 = step * tanh(head(h_1)), s_t = (1 - g_t) * s_t-1 + g_t * step * tanh(head(h_t)) with a
    gate g_t = sigmoid(gate(h_t)) per coordinate of z, closed at the start (bias ``INERTIA_BIAS``: g
    ~ 0.12). A real ball runs straight between contacts; a residual G_V writes every step afresh,
    and its path in z turns by ~10 degrees a frame. Here coasting is the default and a change of
    course is something G_V opens the gate for. Steps stay within ``step`` per coordinate, as a
    residual path's. Measured (docs/training-log.md #22): the gates open as it trains, and its balls
    waver as much as a residual G_V's (straight walks in z waver as much too: that is G_F's).

    ``look=True`` (not the paper's; residual path only) closes the loop: G_V sees what its steps do.
    The frozen G_F it is trained over (``attach_eye``) renders each frame of the path as it is
    written, and the length of the next step is scaled by 2 * sigmoid(pace([h_t, e_t])), where e_t is
    a small convolutional encoding of the last frame and of its change from the frame before. An
    open-loop G_V cannot know how far a step in z moves the balls (G_F's gain varies along its path,
    docs/training-log.md #13 and #17); one that sees the frames can learn to step further where they
    barely change. Only the discriminators' loss trains it, as any other G_V.
    """

    def __init__(
        self,
        *,
        latent: int = 100,
        frame_latent: int = 100,
        frames: int = 30,
        fc: Sequence[int] = (512, 1024, 2048),
        seq_features: int = 128,
        lstm_hidden: int = 256,
        lstm_layers: int = 2,
        out_scale: float = 1.0,
        sphere: bool = False,
        path: str = "absolute",
        step: float = 0.1,
        look: bool = False,
    ) -> None:
        super().__init__()
        if path not in ("absolute", "residual", "steady", "inertial"):
            raise ValueError(f"path must be 'absolute', 'residual', 'steady' or 'inertial', not {path!r}")
        if path != "absolute" and latent != frame_latent:
            raise ValueError(
                f"a residual path starts at z_v: latent ({latent}) must equal frame_latent ({frame_latent})"
            )
        if look and path != "residual":
            raise ValueError(f"a G_V that looks at its frames writes a residual path, not {path!r}")
        self.frames, self.seq_features, self.out_scale = frames, seq_features, out_scale
        self.path, self.step = path, step
        if sphere and look:
            raise ValueError("a G_V that looks at its frames does not keep its path on a sphere")
        self.sphere = sphere  # absolute path: radius out_scale * sqrt(frame_latent); residual, steady: |z_v|
        self.radius = out_scale * frame_latent**0.5 if sphere else None
        dims = [latent, *fc, frames * seq_features]
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-1], dims[1:], strict=True):
            layers += [nn.Linear(d_in, d_out, bias=False), nn.BatchNorm1d(d_out), nn.ReLU(True)]
        self.encoder = nn.Sequential(*layers)
        self.lstm = nn.LSTM(seq_features, lstm_hidden, lstm_layers, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * lstm_hidden, frame_latent)
        self.speed = nn.Linear(2 * lstm_hidden, 1) if path == "steady" else None
        # look: (B, 2, 30, 30), the last frame and its change -> (B, 32)
        look_layers = [nn.Conv2d(2, 16, 4, 2, 1), nn.LeakyReLU(0.2, True), nn.Conv2d(16, 32, 4, 2, 1),
                       nn.LeakyReLU(0.2, True), nn.AdaptiveAvgPool2d(1), nn.Flatten()]  # fmt: skip
        self.look = nn.Sequential(*look_layers) if look else None
        self.pace = nn.Linear(2 * lstm_hidden + 32, 1) if look else None
        self.eye: FrameGenerator | None = None
        self.gate = nn.Linear(2 * lstm_hidden, frame_latent) if path == "inertial" else None
        dcgan_init(self)
        if self.gate is not None:
            nn.init.constant_(self.gate.bias, INERTIA_BIAS)

    def attach_eye(self, frames: FrameGenerator) -> SequenceGenerator:
        """The frozen G_F that a looking G_V sees its path through (the one it is trained over; it
        stays that one when the video model renders with another G_F, as in the paper's swap)."""
        if self.look is None:
            raise ValueError("only a G_V built with look=True has an eye")
        self.eye = frames.requires_grad_(False).eval()
        return self

    def train(self, mode: bool = True) -> SequenceGenerator:
        super().train(mode)
        if self.eye is not None:
            self.eye.eval()  # frozen: its batch-norm statistics never move
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.walk(z)[0]

    def walk(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """z_F (B, T, frame_latent), and the frames (B, T, H, W) the eye drew of it (a looking G_V;
        None otherwise): a video model whose G_F is the eye uses those instead of drawing them again."""
        h = self.encoder(z).view(-1, self.frames, self.seq_features)  # (B, T, seq_features)
        h, _ = self.lstm(h)  # (B, T, 2 * hidden)
        if self.path == "residual":
            steps = self.step * torch.tanh(self.head(h[:, 1:]))  # (B, T-1, frame_latent)
            if self.look is not None:
                return self._looking_path(z, h, steps)
            return self._on_shell(z, torch.cat([z[:, None], z[:, None] + torch.cumsum(steps, dim=1)], dim=1)), None
        if self.path == "inertial":
            return self._on_shell(z, self._coasting_path(z, h)), None
        if self.path == "steady":
            u = self.head(h[:, 1:])  # (B, T-1, frame_latent): the directions
            u = u / u.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            r = self.step * u.shape[-1] ** 0.5 * torch.sigmoid(self.speed(h.mean(dim=1)))  # (B, 1): speed in z
            path = torch.cat([z[:, None], z[:, None] + torch.cumsum(r[:, None] * u, dim=1)], dim=1)
            return self._on_shell(z, path), None
        zf = torch.tanh(self.head(h))  # (B, T, frame_latent)
        if self.radius is not None:
            return zf * (self.radius / zf.norm(dim=-1, keepdim=True).clamp_min(1e-6)), None
        return zf * self.out_scale, None

    def _coasting_path(self, z: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """The inertial path: each step a gated mix of the step before and a fresh one."""
        if self.gate is None:
            raise RuntimeError("an inertial path needs its gate")
        fresh = self.step * torch.tanh(self.head(h[:, 1:]))  # (B, T-1, frame_latent)
        gates = torch.sigmoid(self.gate(h[:, 2:]))  # (B, T-2, frame_latent): the first step has none
        path, step = [z, z + fresh[:, 0]], fresh[:, 0]
        for t in range(1, fresh.shape[1]):
            step = step + gates[:, t - 1] * (fresh[:, t] - step)
            path.append(path[-1] + step)
        return torch.stack(path, dim=1)

    def _on_shell(self, z: torch.Tensor, path: torch.Tensor) -> torch.Tensor:
        """A walk from z_v (B, T, latent) as it is, or with ``sphere`` each point rescaled to |z_v|: the
        walk keeps to its start's shell, where G_F's prior puts its samples, instead of drifting out."""
        if not self.sphere:
            return path
        return path * (z.norm(dim=-1)[:, None, None] / path.norm(dim=-1, keepdim=True).clamp_min(1e-6))

    def _looking_path(self, z: torch.Tensor, h: torch.Tensor, steps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eye is None or self.pace is None:
            raise RuntimeError("a looking G_V needs its G_F: call attach_eye first")
        path, drawn = [z], [self.eye(z)]  # drawn: (B, 1, H, W) each
        change = torch.zeros_like(drawn[0])
        for t in range(steps.shape[1]):
            seen = self.look(torch.cat([drawn[-1], change], dim=1))  # (B, 32)
            scale = 2 * torch.sigmoid(self.pace(torch.cat([h[:, t + 1], seen], dim=-1)))  # (B, 1)
            path.append(path[-1] + scale * steps[:, t])
            drawn.append(self.eye(path[-1]))
            change = drawn[-1] - drawn[-2]
        return torch.stack(path, dim=1), torch.cat(drawn, dim=1)


class VideoGenerator(nn.Module):
    """G_V followed by the frame generator: z_v (B, latent) -> (video (B, T, 30, 30), z_F (B, T, latent)).

    The frame generator is frozen: no gradients for its weights, and it stays in eval mode (its
    batch-norm statistics never move) whatever mode this module is put in. When it is the eye of a
    looking G_V, the frames the eye drew along the path are the video (not drawn twice).
    """

    def __init__(self, sequence: SequenceGenerator, frames: FrameGenerator) -> None:
        super().__init__()
        self.sequence = sequence
        self.frames = frames.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> VideoGenerator:
        super().train(mode)
        self.frames.eval()
        return self

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zf, drawn = self.sequence.walk(z)  # (B, T, latent); a looking G_V's frames as its eye drew them
        if drawn is not None and self.sequence.eye is self.frames:
            return drawn, zf
        t, size = self.sequence.frames, FrameGenerator.size  # static sizes: fixed shapes in ONNX
        frames = self.frames(zf.reshape(-1, zf.shape[-1]))  # (B*T, 1, H, W)
        return frames.view(-1, t, size, size), zf


class VideoFrames(nn.Module):
    """A VideoGenerator's videos alone: z_v (B, latent) -> video (B, T, 30, 30), what stage 2 trains."""

    def __init__(self, video: VideoGenerator) -> None:
        super().__init__()
        self.video = video

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.video(z)[0]


class RandomProjection(nn.Module):
    """K fixed random convolutions, each with unit-norm weights, never trained: each of the
    ``channels`` input channels gets its own projection per discriminator (1 -> 1 channel each).

    The weights are a buffer (K, channels, *kernel): no optimizer sees them, and they travel in the
    state dict. Input (B, channels, *S) -> output (B, K * channels, *S'), grouped per discriminator.
    """

    def __init__(
        self, *, count: int, kernel: Size, stride: Size, padding: Size, dims: int, seed: int, channels: int = 1
    ) -> None:
        super().__init__()
        kernel = _tuple(kernel, dims)
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(count, channels, *kernel, generator=gen)
        w = w / w.flatten(2).norm(dim=2).view(count, channels, *([1] * dims))
        self.register_buffer("weight", w)
        self.stride, self.padding, self.dims = stride, padding, dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self.dims == 2 else F.conv3d
        k, c = self.weight.shape[:2]
        w = self.weight.transpose(0, 1).reshape(c * k, 1, *self.weight.shape[2:])  # (C*K, 1, *kernel)
        h = conv(x, w, stride=self.stride, padding=self.padding, groups=c)  # (B, C*K, *S'), channel-major
        if c == 1:
            return h
        b, _, *s = h.shape
        return h.view(b, c, k, *s).transpose(1, 2).reshape(b, k * c, *s)  # discriminator-major


class MinibatchStd(nn.Module):
    """Appends, per discriminator of a K-ensemble, one feature map holding the mean over features
    and positions of the batch standard deviation: (B, K*C, *S) -> (B, K*(C+1), *S).

    A discriminator that sees the spread of its batch can tell a collapsed generator from data;
    the small presets need it (plain settings collapse within ~1,000 steps: docs/training-log.md).
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, kc, *s = h.shape
        centred = h - h.mean(dim=0, keepdim=True)  # two passes by hand: faster than var's Welford kernel here
        std = torch.sqrt(centred.square().mean(dim=0) + 1e-8)  # (K*C, *S), the batch standard deviation
        return append_per_discriminator(h, std.reshape(1, self.count, -1).mean(dim=2), self.count)


class TemporalStd(nn.Module):
    """Per discriminator of a K-ensemble of video discriminators, how much its first layer's
    features change over a video's time: each channel averaged over positions, its standard
    deviation over time, averaged over channels, one scalar per video (B, K).

    The minibatch-stddev feature's counterpart along time: a real ball keeps its speed between
    contacts, so the motion features of a real video vary little over its frames. The statistic is
    of learned features, not of tracked balls or pixels; it reaches the head as one more channel.
    """

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, kc, t = h.shape[:3]
        series = h.reshape(b, kc, t, -1).mean(dim=3)  # (B, K*C, T): each channel over positions
        centred = series - series.mean(dim=2, keepdim=True)
        std = torch.sqrt(centred.square().mean(dim=2) + 1e-8)  # (B, K*C)
        return std.view(b, self.count, -1).mean(dim=2)  # (B, K)


def append_per_discriminator(h: torch.Tensor, stat: torch.Tensor, count: int) -> torch.Tensor:
    """(B, K*C, *S) and one value per discriminator (B or 1, K) -> (B, K*(C+1), *S), the value as a
    constant feature map after each discriminator's own channels."""
    b, kc, *s = h.shape
    g = h.reshape(b, count, kc // count, *s)
    stat = stat.reshape(stat.shape[0], count, 1, *([1] * len(s))).expand(b, count, 1, *s)
    return torch.cat([g, stat], dim=2).view(b, -1, *s)


class GroupSpectralNorm(nn.Module):
    """Spectral normalisation (Miyato et al. 2018) per group of a grouped convolution: each of the K
    discriminators' kernels, viewed as an (out, in * kernel) matrix, is divided by its own largest
    singular value, estimated by one power iteration per training-mode call (u and v are buffers,
    saved in checkpoints). Used as a parametrization: ``parametrize.register_parametrization``.
    """

    def __init__(self, weight: torch.Tensor, groups: int, warmup: int = 10) -> None:
        super().__init__()
        self.groups = groups
        w = self._matrices(weight.detach())
        gen = torch.Generator().manual_seed(0)
        self.register_buffer("u", F.normalize(torch.randn(w.shape[:2], generator=gen), dim=1))
        self.register_buffer("v", F.normalize(torch.randn(w.shape[0], w.shape[2], generator=gen), dim=1))
        for _ in range(warmup):
            self._power_iteration(w)

    def _matrices(self, weight: torch.Tensor) -> torch.Tensor:
        return weight.reshape(self.groups, weight.shape[0] // self.groups, -1)  # (K, out, in * kernel)

    @torch.no_grad()
    def _power_iteration(self, w: torch.Tensor) -> None:
        self.v.copy_(F.normalize(torch.einsum("ko,kon->kn", self.u, w), dim=1))
        self.u.copy_(F.normalize(torch.einsum("kon,kn->ko", w, self.v), dim=1))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        w = self._matrices(weight)
        if self.training:
            self._power_iteration(w.detach())
        # clones: a later call's power iteration must not change what this call's graph saw
        sigma = torch.einsum("ko,kon,kn->k", self.u.clone(), w, self.v.clone())  # (K,): gradients via w only
        per_row = sigma.repeat_interleave(w.shape[1])
        return weight / per_row.view(-1, *([1] * (weight.dim() - 1)))


# Layer plans (out-channel multiple of the width, kernel, stride, padding), the last one to a logit.
FRAME_PLAN = dict(
    projection=dict(kernel=8, stride=2, padding=3),
    layers=[(1, 4, 2, 2), (2, 4, 2, 1), (4, 4, 2, 1)],
    head=(4, 1, 1),
)
VIDEO_PLAN = dict(
    projection=dict(kernel=(1, 8, 8), stride=(1, 3, 3), padding=(0, 2, 2)),
    layers=[(1, 4, 2, 1), (2, 4, (2, 1, 1), 1), (3, 4, 1, (0, 1, 1))],
    head=(4, 1, (0, 1, 1)),
)


class DiscriminatorEnsemble(nn.Module):
    """K discriminators, each a fixed random projection followed by its own conv stack, computed
    together as grouped convolutions: the same function as K separate networks (a test proves it).
    benchmarks/ensemble_step.py measures it against a loop over K modules, and what else was tried.

    kind="frame": input (B, 1, 30, 30); kind="video": input (B, T, 30, 30). Output: logits (B, K).
    ``inputs`` (video only, not the paper's): "frames" (the paper), "diffs" (each frame minus the one
    before, the first difference zero), "frames+diffs" (both, as two channels, each projected by its
    own random projection) or "diffs+accel" (the differences and the second differences, the first two
    zero: a ball moving straight at a steady speed has no second difference away from walls and other
    balls): a discriminator that sees differences must judge the motion itself. ``temporal_std``
    (video only, not the paper's): each discriminator's head also sees how much its first layer's
    features vary over the video's time (``TemporalStd``).
    """

    def __init__(
        self,
        *,
        kind: str,
        count: int,
        width: int,
        seed: int,
        minibatch_std: bool = False,
        spectral_norm: bool = False,
        slope: float = 0.2,
        inputs: str = "frames",
        temporal_std: bool = False,
    ) -> None:
        super().__init__()
        if kind not in ("frame", "video"):
            raise ValueError(f"kind must be 'frame' or 'video', not {kind!r}")
        if inputs not in D_INPUTS or (kind == "frame" and inputs != "frames"):
            raise ValueError(f"inputs must be one of {D_INPUTS} (frame discriminators: 'frames'), not {inputs!r}")
        if temporal_std and kind != "video":
            raise ValueError("temporal_std is a feature of video discriminators")
        plan = FRAME_PLAN if kind == "frame" else VIDEO_PLAN
        self.kind, self.count, self.width, self.slope, self.inputs = kind, count, width, slope, inputs
        dims = 2 if kind == "frame" else 3
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        c_in = len(inputs.split("+"))
        self.projection = RandomProjection(count=count, dims=dims, seed=seed, channels=c_in, **plan["projection"])
        layers: list[nn.Module] = []
        for mult, k, s, p in plan["layers"]:
            layers.append(conv(count * c_in, count * mult * width, k, s, p, groups=count))
            c_in = mult * width
        self.layers = nn.ModuleList(layers)
        self.mbstd = MinibatchStd(count) if minibatch_std else None
        self.tstd = TemporalStd(count) if temporal_std else None
        k, s, p = plan["head"]
        self.head = conv(count * (c_in + int(minibatch_std) + int(temporal_std)), count, k, s, p, groups=count)
        dcgan_init(self)
        if spectral_norm:
            for layer in [*self.layers, self.head]:
                parametrize.register_parametrization(layer, "weight", GroupSpectralNorm(layer.weight, count))
        # channels-last frames: oneDNN's grouped 2-D convolutions run faster so (not in 3-D; make bench-train)
        self.memory_format = torch.channels_last if dims == 2 else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, K) of a batch of frames (B, 1, 30, 30) or videos (B, T, 30, 30)."""
        if self.kind == "video":
            x = self._video_channels(x)  # (B, C, T, H, W)
        h = self.projection(x).contiguous(memory_format=self.memory_format)  # (B, K, *S)
        over_time = None
        for i, layer in enumerate(self.layers):
            h = F.leaky_relu(layer(h), self.slope, inplace=True)  # in place: the convolution's output is not kept
            if i == 0 and self.tstd is not None:
                over_time = self.tstd(h)  # (B, K), from the first layer's finest time steps
        if self.mbstd is not None:
            h = self.mbstd(h)
        if over_time is not None:
            h = append_per_discriminator(h, over_time, self.count)
        return self._head(h)  # (B, K)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """The head convolution, to one logit per discriminator. Where its output is a single
        position (the plans' sizes), it is a dot product of each discriminator's features with the
        kernel taps that fall on the input (the others only ever meet padding): the same numbers,
        gradients included, without a grouped convolution's backward pass (a test holds them equal)."""
        head, spatial = self.head, h.shape[2:]
        sizes = zip(spatial, head.kernel_size, head.stride, head.padding, strict=True)
        if any((n + 2 * p - k) // s + 1 != 1 for n, k, s, p in sizes):
            return head(h).flatten(1)
        covered = [min(n, k - p) for n, k, p in zip(spatial, head.kernel_size, head.padding, strict=True)]
        window = [slice(p, p + c) for p, c in zip(head.padding, covered, strict=True)]
        # head.weight read once: under spectral norm each read is a power iteration
        taps = head.weight[(slice(None), slice(None), *window)]  # (K, C, *covered)
        x = h[(slice(None), slice(None), *(slice(0, c) for c in covered))]
        x = x.reshape(h.shape[0], self.count, -1)  # (B, K, C * window)
        return torch.einsum("bkn,kn->bk", x, taps.reshape(self.count, -1)) + head.bias

    def _video_channels(self, x: torch.Tensor) -> torch.Tensor:
        views = {"frames": x}
        if "diffs" in self.inputs or "accel" in self.inputs:
            views["diffs"] = _difference(x)  # (B, T, H, W)
        if "accel" in self.inputs:
            views["accel"] = _difference(views["diffs"]).index_fill(1, torch.tensor([1], device=x.device), 0.0)
        return torch.stack([views[name] for name in self.inputs.split("+")], dim=1)  # (B, C, T, H, W)


def _difference(x: torch.Tensor) -> torch.Tensor:
    """Each frame minus the one before along dim 1, the first difference zero: (B, T, ...) -> (B, T, ...)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, 1:] - x[:, :-1]], dim=1)


def parameter_count(module: nn.Module, trained: bool = False) -> int:
    """Parameters of ``module``; with ``trained``, only those that get gradients (not a frozen G_F inside)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trained)


def _tuple(v: Size, n: int) -> tuple[int, ...]:
    return tuple(v) if isinstance(v, tuple) else (v,) * n
