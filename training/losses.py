"""GAN losses as pure functions of discriminator logits (B, K); nothing here calls backward().

Non-saturating losses of the paper (eq. 1-2) per discriminator, and the two ways of combining the
K generator losses: their sum (eq. 3, the paper's) or the hypervolume of the authors' code. Plus an
optional stabiliser that is not the paper's: the mode-seeking term of MSGAN (Mao et al. 2019).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from training.config import G_LOSS_MODES


def d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Each discriminator's loss, (K,): -log D(x) - log(1 - D(G(z))), averaged over the batch."""
    return F.softplus(-real_logits).mean(dim=0) + F.softplus(fake_logits).mean(dim=0)


def g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The generator's loss against each discriminator, (K,): -log D_k(G(z)), averaged over the batch."""
    return F.softplus(-fake_logits).mean(dim=0)


def combine(losses: torch.Tensor, mode: str = "sum", slack: float = 1.5) -> torch.Tensor:
    """One scalar from the K generator losses.

    sum: sum_k l_k (eq. 3). hypervolume: -sum_k log(eta - l_k) with eta = slack * max_k l_k held
    constant, which weights each discriminator by 1 / (eta - l_k): the ones the generator fools
    least count most.
    """
    if mode == "sum":
        return losses.sum()
    if mode == "hypervolume":
        eta = slack * losses.detach().max()
        return -torch.log(eta - losses).sum()
    raise ValueError(f"g_loss must be one of {G_LOSS_MODES}, not {mode!r}")


def jacobian_clamp(fake: torch.Tensor, moved: torch.Tensor, step: float, low: float, high: float) -> torch.Tensor:
    """Jacobian clamping (Odena et al., ICML 2018): Q = |G(z + d) - G(z)| / |d| per sample, penalised
    by (max(Q, high) - high)^2 + (min(Q, low) - low)^2, averaged: keeps G's response to a step in z
    within [low, high] everywhere, so that no region of z is flat (a hold) or a cliff (a jump)."""
    q = (moved - fake).flatten(1).norm(dim=1) / step
    return ((q.clamp_min(high) - high) ** 2 + (q.clamp_max(low) - low) ** 2).mean()


def gain_steadiness(fake: torch.Tensor, moved: torch.Tensor, further: torch.Tensor) -> torch.Tensor:
    """How much G's gain changes along a straight walk in z: G(z), G(z + d), G(z + 2d) per sample, the
    mean of (log |G(z + 2d) - G(z + d)| - log |G(z + d) - G(z)|)^2. Zero where two equal steps along
    a line change the frame equally; scale-free, so it leaves the gain's size to the rest of the loss
    (Jacobian clamping's band). A G_V walks G_F's latent space in small steps along its steep
    directions, and where G_F's gain changes from one step to the next, the balls change speed."""
    first = (moved - fake).flatten(1).norm(dim=1).clamp_min(1e-6)
    second = (further - moved).flatten(1).norm(dim=1).clamp_min(1e-6)
    return (torch.log(second / first) ** 2).mean()


def path_length(fake: torch.Tensor, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Path-length regularisation (Karras et al., StyleGAN2, CVPR 2020), relative to the batch: the
    lengths L = |J^T y| per sample (J = dG/dz at z, y a random image of N(0, 1/pixels) entries, so
    L^2 averages G's squared gain over every direction in z), penalised by the mean of
    (L / mean(L) - 1)^2, the squared spread of L over the batch. It is smallest when G's gain is the
    same at every z and in every direction there (J orthogonal up to one scale), and a function of
    L / mean(L) only, so its gradient never shrinks or grows G's gain as a whole (with the mean held
    constant it would: every L pulled toward it shrinks them all by their variance); the scale is
    left to the rest of the loss. No running target: no state, and it resumes exactly. ``fake`` =
    G(z) drawn from a ``z`` that requires grad; the graph is kept for the generator's backward."""
    (grad,) = torch.autograd.grad((fake * y).sum(), z, create_graph=True)
    lengths = grad.flatten(1).norm(dim=1)
    return ((lengths / lengths.mean().clamp_min(1e-12) - 1) ** 2).mean()


def parent_anchor(fake: torch.Tensor, parent: torch.Tensor) -> torch.Tensor:
    """How much brighter G's frames are than a parent generator's at the same z: the squared excess
    intensity (frames in [-1, 1], intensity = (x + 1) / 2) summed over pixels, averaged over the batch.
    Zero wherever G draws light only where the parent did: a 1-ball G_F fine-tuned from a 3-ball one
    under it keeps its ball on one of the parent's balls, whose paths a G_V trained over the parent
    already knows (the swap). It asks nothing of G where the parent is bright."""
    excess = ((fake - parent) / 2).clamp_min(0)
    return (excess**2).flatten(1).sum(dim=1).mean()


def mode_seeking(fakes: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MSGAN's mode-seeking term: 1 / (mean |G(z_a) - G(z_b)| / mean |z_a - z_b|), over the pairs
    (first half of the batch, second half). Minimising it pushes different z to different outputs,
    against mode collapse; it is smallest when outputs are far apart for a given distance in z."""
    half = fakes.shape[0] // 2
    if half == 0:
        raise ValueError("the mode-seeking term needs a batch of at least 2")
    apart = (fakes[:half] - fakes[half : 2 * half]).abs().flatten(1).mean(dim=1)
    z_apart = (z[:half] - z[half : 2 * half]).abs().flatten(1).mean(dim=1)
    return 1.0 / ((apart / z_apart).mean() + eps)
