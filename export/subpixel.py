"""Transposed convolutions rewritten as sub-pixel convolutions, for export: the same numbers, in a
form ONNX Runtime runs faster (benchmarks/generator.py measures both).

A stride-2 transposed convolution with a 4-tap kernel makes every output pixel from 2 x 2 input
pixels, with one of four 2 x 2 sub-kernels chosen by the output pixel's parity (row, column). So it
equals one ordinary 2 x 2 convolution with four times the output channels (a sub-kernel each), a
depth-to-space that interleaves the four phases, and a crop: ``SubPixelConvTranspose``. With
``fold`` the batch norm that follows is folded into its weights (batch norm in eval mode is an
affine map per channel). ``rewrite`` returns a copy of a module with every such layer replaced.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F


def _layout(padding: int) -> tuple[int, int, tuple[int, int]]:
    """(pad, crop, phase of each output parity) for stride 2, kernel 4 and this padding.

    Output pixel o = 2j + e of a transposed convolution reads input pixels j + s - 1 and j + s,
    s = (e + padding) // 2. The 2 x 2 convolution over the input padded by ``pad`` writes, after
    depth-to-space, the pixel of phase ph at 2q + ph from input pixels q - pad and q - pad + 1; so
    o must sit at 2(j + s - 1 + pad) + ph = o + crop.
    """
    for pad in (0, 1):
        for crop in (0, 1, 2):
            phases = tuple(e + crop - 2 * ((e + padding) // 2 - 1 + pad) for e in (0, 1))
            if sorted(phases) == [0, 1]:
                return pad, crop, phases
    raise ValueError(f"no sub-pixel layout for padding {padding}")


class SubPixelConvTranspose(nn.Module):
    """A ConvTranspose2d (stride 2, kernel 4, no groups or dilation), optionally with the BatchNorm2d
    after it folded in, as one Conv2d (2 x 2, 4 x out channels), depth-to-space and a crop."""

    def __init__(self, layer: nn.ConvTranspose2d, norm: nn.BatchNorm2d | None = None) -> None:
        super().__init__()
        if (
            layer.stride != (2, 2) or layer.kernel_size != (4, 4) or layer.groups != 1
            or layer.dilation != (1, 1) or layer.output_padding != (0, 0) or layer.padding[0] != layer.padding[1]
        ):  # fmt: skip
            raise ValueError(f"only stride-2, 4x4, square-padded transposed convolutions are rewritten: {layer}")
        self.pad, self.crop, phases = _layout(layer.padding[0])
        w = layer.weight.detach()  # (in, out, 4, 4)
        c_out = w.shape[1]
        bias = layer.bias.detach() if layer.bias is not None else torch.zeros(c_out)
        if norm is not None:  # eval-mode batch norm: y = (x - mean) / sqrt(var + eps) * gamma + beta
            scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
            w = w * scale.view(1, -1, 1, 1)
            bias = (bias - norm.running_mean) * scale + norm.bias.detach()
        # the sub-kernel of output parity e reads input taps (j + s - 1, j + s) with kernel taps (r + 2, r)
        sub = torch.zeros(2, 2, c_out, w.shape[0], 2, 2)  # (phase row, phase col, out, in, 2, 2)
        for er in (0, 1):
            rr = (er + layer.padding[0]) % 2
            for ec in (0, 1):
                rc = (ec + layer.padding[1]) % 2
                taps = w[:, :, [rr + 2, rr]][:, :, :, [rc + 2, rc]]  # (in, out, 2, 2)
                sub[phases[er], phases[ec]] = taps.transpose(0, 1)
        # depth-to-space (pixel_shuffle) reads channel c * 4 + row phase * 2 + col phase
        self.weight = nn.Parameter(sub.permute(2, 0, 1, 3, 4, 5).reshape(4 * c_out, w.shape[0], 2, 2))
        self.bias = nn.Parameter(bias.repeat_interleave(4))
        # depth-to-space makes 2 * (side + 2 * pad - 1); the output is 2 * side + 2 - 2 * padding
        self.end = 2 * (2 * self.pad - 1) - 2 + 2 * layer.padding[0] - self.crop  # pixels cut at the far end
        if self.end < 0:
            raise ValueError(f"no sub-pixel layout for padding {layer.padding[0]}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.pixel_shuffle(F.conv2d(x, self.weight, self.bias, padding=self.pad), 2)
        if self.crop or self.end:  # constant bounds: the exported graph keeps static shapes
            stop = -self.end if self.end else None
            y = y[:, :, self.crop : stop, self.crop : stop]
        return y


def rewrite(module: nn.Module, fold: bool = True) -> nn.Module:
    """A copy of ``module`` (eval mode) with every ConvTranspose2d in an nn.Sequential rewritten, and
    with ``fold`` the BatchNorm2d right after it folded in (that one becomes an identity)."""
    out = copy.deepcopy(module).eval()
    for seq in [m for m in out.modules() if isinstance(m, nn.Sequential)]:
        children = list(seq)
        for i, child in enumerate(children):
            if not isinstance(child, nn.ConvTranspose2d):
                continue
            after = children[i + 1] if i + 1 < len(children) else None
            norm = after if fold and isinstance(after, nn.BatchNorm2d) else None
            seq[i] = SubPixelConvTranspose(child, norm)
            if norm is not None:
                seq[i + 1] = nn.Identity()
    return out
