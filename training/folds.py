"""Where a fine-tune's folds point (``--g-fold-span``): within the parent G_F's steepest directions.

A G_F moves its balls along few directions of z: averaged over the prior, J^T J (J = dG_F/dz) of
the shipped 3-ball G_F has 97% of its trace in its top 6 eigenvectors, two per ball, and a 1-ball G_F
fine-tuned from it moves its ball inside that span. Folds drawn over all of z (``--g-folds`` alone)
put ~6% of each projection there, so a walk that moves the balls barely moves the folds. ``aim``
redraws each fold's projection inside the span instead, at the same length.
"""

from __future__ import annotations

import torch

from training.networks import FrameGenerator

SPAN_POINTS = 64  # prior samples J^T J is averaged over; each costs 2 x latent frames
SPAN_STEP = 0.02  # central differences, as training.gain's spectrum


@torch.no_grad()
def steepest_span(gf: FrameGenerator, k: int, seed: int, points: int = SPAN_POINTS) -> torch.Tensor:
    """The top ``k`` eigenvectors of G_F's J^T J averaged over ``points`` prior samples (eval mode:
    the running batch statistics, as G_F is evaluated): (latent, k), orthonormal columns."""
    was_training = gf.training
    gf.eval()
    try:
        device = next(gf.parameters()).device
        z = torch.randn(points, gf.latent, generator=torch.Generator().manual_seed(seed + 4_711)).to(device)
        axes = torch.eye(gf.latent, device=device) * SPAN_STEP
        m = torch.zeros(gf.latent, gf.latent, dtype=torch.float64, device=device)
        for zi in z:  # one point at a time: 2 x latent frames
            moved = torch.cat([zi + axes, zi - axes])
            drawn = gf(moved).flatten(1).double()
            j = (drawn[: gf.latent] - drawn[gf.latent :]) / (2 * SPAN_STEP)  # (latent, pixels): J^T
            m += j @ j.T
        _, vectors = torch.linalg.eigh(m / points)  # ascending
        return vectors[:, -k:].flip(1).float()
    finally:
        gf.train(was_training)


@torch.no_grad()
def aim(gf: FrameGenerator, span: torch.Tensor, seed: int) -> None:
    """Redraw ``gf``'s fold projections (``fold_in`` rows) as random directions inside ``span``
    (latent, k), each as long as it is now (so its spread over the prior stays as drawn); the phases
    and ``fold_out`` are left as they are."""
    if not gf.folds:
        raise ValueError("this G_F has no folds to aim (--g-folds)")
    weight = gf.fold_in.weight  # (folds, latent)
    mix = torch.randn(gf.folds, span.shape[1], generator=torch.Generator().manual_seed(seed + 4_712))
    rows = mix.to(span) @ span.T
    rows *= weight.norm(dim=1, keepdim=True) / rows.norm(dim=1, keepdim=True)
    weight.copy_(rows)
