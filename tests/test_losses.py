"""Loss functions on hand-picked discriminator outputs."""

import math

import pytest
import torch

from training import losses


def test_d_loss_per_discriminator():
    real = torch.tensor([[0.0, 20.0], [0.0, 20.0]])  # (B=2, K=2): D1 unsure, D2 sure it is real
    fake = torch.tensor([[0.0, -20.0], [0.0, -20.0]])  # ... and sure the fakes are fake
    out = losses.d_loss(real, fake)
    assert out.shape == (2,)
    assert out[0].item() == pytest.approx(2 * math.log(2))  # -log(1/2) - log(1/2)
    assert out[1].item() == pytest.approx(0.0, abs=1e-8)


def test_g_loss_is_non_saturating():
    fake = torch.tensor([[0.0, -10.0, 10.0]])
    out = losses.g_loss(fake)
    assert out[0].item() == pytest.approx(math.log(2))
    assert out[1].item() == pytest.approx(10.0, abs=1e-4)  # -log sigmoid(-10): large, not saturated at 0
    assert out[2].item() == pytest.approx(0.0, abs=1e-4)


def test_combine_sum_and_hypervolume():
    values = torch.tensor([1.0, 2.0], requires_grad=True)
    assert losses.combine(values, "sum").item() == pytest.approx(3.0)
    hv = losses.combine(values, "hypervolume", slack=1.5)  # eta = 3: -(log 2 + log 1)
    assert hv.item() == pytest.approx(-math.log(2))
    hv.backward()
    torch.testing.assert_close(values.grad, torch.tensor([0.5, 1.0]))  # 1 / (eta - l_k): the worst counts most
    with pytest.raises(ValueError, match="g_loss"):
        losses.combine(values, "max")


def test_mode_seeking_term():
    z = torch.zeros(4, 3)
    z[2:] = 2.0  # pairs (0, 2) and (1, 3) are 2 apart in z
    fakes = torch.zeros(4, 5, requires_grad=True)
    with torch.no_grad():
        fakes[2:] = 1.0  # ... and 1 apart in output: ratio 0.5, term 2
    term = losses.mode_seeking(fakes, z, eps=0.0)
    assert term.item() == pytest.approx(2.0)
    term.backward()
    assert (fakes.grad[:2] > 0).all() and (fakes.grad[2:] < 0).all()  # descent pushes the pairs apart
    same = losses.mode_seeking(torch.ones(4, 5), z)  # collapsed outputs: a large penalty
    assert same.item() > 1e4
    with pytest.raises(ValueError, match="at least 2"):
        losses.mode_seeking(torch.ones(1, 5), z[:1])


def test_jacobian_clamp_penalises_only_outside_the_band():
    fake = torch.zeros(3, 1, 2, 2)
    moved = torch.tensor([1.0, 3.0, 9.0])[:, None, None, None] * torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    # Q = |moved - fake| / 1 = 1, 3, 9 against the band [2, 6]: (2 - 1)^2 and (9 - 6)^2, averaged
    value = losses.jacobian_clamp(fake, moved, step=1.0, low=2.0, high=6.0)
    assert value.item() == pytest.approx((1 + 9) / 3)
    assert losses.jacobian_clamp(fake, moved[1:2].expand(3, -1, -1, -1), 1.0, 2.0, 6.0).item() == 0.0
    moved = moved.clone().requires_grad_(True)
    losses.jacobian_clamp(fake, moved, 1.0, 2.0, 6.0).backward()
    g = moved.grad[:, 0, 0, 0]
    assert g[0] < 0 and g[1] == 0 and g[2] > 0  # a too-flat G is pushed to respond more, a cliff less


def test_path_length_penalises_uneven_gain_and_evens_a_linear_g():
    torch.manual_seed(0)
    a = (torch.randn(36, 8) * torch.linspace(0.2, 3.0, 8)).requires_grad_(True)  # G: z -> A z, a 6x6 frame
    z = torch.randn(64, 8, requires_grad=True)

    def penalty(weights, y):
        return losses.path_length((z @ weights.T).view(-1, 1, 6, 6), z, y)

    y = torch.randn(64, 1, 6, 6) / 6
    q, _ = torch.linalg.qr(torch.randn(36, 8))
    even = q * a.detach().norm() / math.sqrt(8)  # the same squared gain summed over directions, all equal
    assert penalty(even, y).item() < penalty(a, y).item()  # only y's own spread is left
    assert penalty(a, y).item() == pytest.approx(penalty(5 * a, y).item(), rel=1e-5)  # blind to the scale ...
    scale = torch.ones((), requires_grad=True)
    (along,) = torch.autograd.grad(penalty(scale * a, y), scale)
    assert abs(along.item()) < 1e-5 * penalty(a, y).item()  # ... and pulls it neither down nor up
    with torch.no_grad():  # a y for which every |A^T y| is the same: nothing to penalise
        same = y[:1].expand(64, -1, -1, -1)
    assert penalty(a, same).item() == pytest.approx(0.0, abs=1e-10)
    opt = torch.optim.Adam([a], lr=0.01)
    before = torch.linalg.svdvals(a.detach())
    for _ in range(300):  # the penalty's gradient reaches G's weights (a double backward)
        opt.zero_grad()
        penalty(a, torch.randn(64, 1, 6, 6) / 6).backward()
        opt.step()
    after = torch.linalg.svdvals(a.detach())
    assert after[0] / after[-1] < 0.5 * before[0] / before[-1]  # the gains come closer together


def test_gain_steadiness_is_zero_on_a_line_and_blind_to_the_scale():
    torch.manual_seed(0)
    z, d = torch.randn(32, 8), 0.1 * torch.randn(32, 8)
    a = torch.randn(36, 8)

    def steadiness(g):
        return losses.gain_steadiness(g(z), g(z + d), g(z + 2 * d))

    def linear(x):
        return (x @ a.T).view(-1, 1, 6, 6)

    def curved(x):  # the gain grows along the walk: the second step changes the frame more than the first
        return torch.exp(x @ a.T).view(-1, 1, 6, 6)

    assert steadiness(linear) == pytest.approx(0.0, abs=1e-8)  # a linear G answers two equal steps equally
    assert steadiness(curved) > 1e-3
    assert steadiness(lambda x: 10 * curved(x)).item() == pytest.approx(steadiness(curved).item(), rel=1e-4)
    # (log 2)^2 where the second step changes the frame twice as much as the first
    fake, moved, further = torch.zeros(2, 4), torch.ones(2, 4), 3 * torch.ones(2, 4)
    assert losses.gain_steadiness(fake, moved, further).item() == pytest.approx(math.log(2) ** 2)
    moved = moved.clone().requires_grad_(True)
    losses.gain_steadiness(fake, moved, further).backward()
    assert (moved.grad < 0).all()  # descent moves the middle frame up, toward 1.5: two equal steps


def test_parent_anchor_penalises_only_light_the_parent_did_not_draw():
    parent = -torch.ones(2, 1, 2, 2)
    parent[:, 0, 0, 0] = 1.0  # the parent drew light at pixel (0, 0) only
    fake = -torch.ones(2, 1, 2, 2)
    fake[0, 0, 0, 0] = 1.0  # sample 0: light where the parent has it: free
    fake[1, 0, 1, 1] = 0.0  # sample 1: half intensity where the parent is dark: excess 0.5
    assert losses.parent_anchor(fake[:1], parent[:1]).item() == 0.0
    assert losses.parent_anchor(fake, parent).item() == pytest.approx((0 + 0.5**2) / 2)
    dimmer = parent.clone()
    dimmer[:, 0, 0, 0] = -1.0  # darker than the parent everywhere: free (it asks nothing where the parent is bright)
    assert losses.parent_anchor(dimmer, parent).item() == 0.0
    fake = fake.clone().requires_grad_(True)
    losses.parent_anchor(fake, parent).backward()
    assert fake.grad[1, 0, 1, 1] > 0 and (fake.grad[0] == 0).all()  # descent dims the stray light only
