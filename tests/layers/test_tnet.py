"""TNet: identity at init; the orthogonality regularizer."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit.layers import TNet, orthogonality_loss


@pytest.mark.parametrize("k", [3, 64])
@pytest.mark.parametrize("train", [True, False])
def test_tnet_outputs_identity_at_init(k, train):
    torch.manual_seed(0)
    tnet = TNet(k).train(train)
    x = torch.randn(2, k, 16)  # (B, k, N)
    out = tnet(x)
    assert out.shape == (2, k, k)
    assert torch.equal(out, torch.eye(k).expand(2, k, k))


def test_tnet_in_channels_differs_from_k():
    tnet = TNet(3, in_channels=6).eval()
    assert tnet(torch.randn(2, 6, 16)).shape == (2, 3, 3)


def _random_orthogonal(k: int, seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(
        torch.randn(k, k, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    )
    return q


@pytest.mark.parametrize("k", [3, 64])
def test_regularizer_is_zero_for_orthogonal_matrices(k):
    eye = torch.eye(k, dtype=torch.float64)
    reflection = eye.clone()
    reflection[0, 0] = -1
    permutation = eye[torch.randperm(k, generator=torch.Generator().manual_seed(1))]
    batch = torch.stack([eye, reflection, permutation, _random_orthogonal(k, 0), _random_orthogonal(k, 1)])
    assert orthogonality_loss(batch).item() <= 1e-12
    assert orthogonality_loss(_random_orthogonal(k, 2)).item() <= 1e-12  # a single (k, k) matrix


@pytest.mark.parametrize("k", [3, 64])
def test_regularizer_is_positive_otherwise(k):
    eye = torch.eye(k, dtype=torch.float64)
    # ||I - (2I)(2I)^T||^2 = k * (1 - 4)^2
    assert orthogonality_loss(2 * eye).item() == pytest.approx(9 * k)
    near = _random_orthogonal(k, 0) + 1e-3 * torch.randn(
        k, k, generator=torch.Generator().manual_seed(5), dtype=torch.float64
    )
    assert orthogonality_loss(near).item() > 0
    # A batch is averaged: one orthogonal and one 2I give half of 9k.
    assert orthogonality_loss(torch.stack([eye, 2 * eye])).item() == pytest.approx(4.5 * k)


def test_regularizer_gradient_flows_and_vanishes_at_orthogonal():
    matrix = (torch.eye(3, dtype=torch.float64) * 1.5).requires_grad_(True)
    orthogonality_loss(matrix).backward()
    assert matrix.grad is not None and matrix.grad.abs().sum() > 0
    q = _random_orthogonal(3, 0).requires_grad_(True)
    orthogonality_loss(q).backward()
    assert q.grad.abs().max().item() <= 1e-12  # a minimum


def test_gradient_flows_through_tnet():
    torch.manual_seed(0)
    tnet = TNet(3).train()
    x = torch.randn(4, 3, 32)
    target = torch.randn(4, 3, 3)
    (tnet(x) - target).square().sum().backward()
    # The last FC starts at zero, so only it learns on the first step ...
    assert tnet.fc.weight.grad.abs().sum() > 0 and tnet.fc.bias.grad.abs().sum() > 0
    with torch.no_grad():
        for p in tnet.parameters():
            p -= 0.1 * p.grad
    tnet.zero_grad()
    (tnet(x) - target).square().sum().backward()
    # ... and from the second on, every parameter gets a gradient.
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tnet.parameters())
