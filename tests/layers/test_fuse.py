"""fold_batchnorm / fold_into: eval-mode BatchNorm folded into the layer before it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pointnet_kit.layers.fuse import fold_batchnorm, fold_into


def _with_stats(bn: nn.modules.batchnorm._BatchNorm, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n = bn.num_features
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(n, generator=g, dtype=torch.float64))
        bn.running_var.copy_(torch.rand(n, generator=g, dtype=torch.float64) + 0.1)
        bn.weight.copy_(torch.randn(n, generator=g, dtype=torch.float64))
        bn.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize(
    "layer, bn, shape",
    [
        (nn.Linear(5, 7), nn.BatchNorm1d(7), (4, 5)),
        (nn.Linear(5, 7, bias=False), nn.BatchNorm1d(7), (4, 5)),
        (nn.Conv1d(5, 7, 1, bias=False), nn.BatchNorm1d(7), (2, 5, 9)),
        (nn.Conv1d(6, 8, 3, groups=2), nn.BatchNorm1d(8), (2, 6, 9)),
        (nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), (2, 3, 6, 5)),
    ],
)
def test_fold_into_is_the_eval_mode_composition(layer, bn, shape):
    torch.manual_seed(0)
    layer, bn = layer.double(), bn.double()
    _with_stats(bn, 1)
    reference = nn.Sequential(layer, bn).eval()
    x = torch.randn(*shape, dtype=torch.float64)
    expected = reference(x)
    fold_into(layer, bn)
    assert layer.bias is not None
    torch.testing.assert_close(layer(x), expected, rtol=0, atol=1e-12)


def test_fold_into_rejects_mismatches():
    with pytest.raises(ValueError, match="channels"):
        fold_into(nn.Linear(3, 4), nn.BatchNorm1d(5))
    with pytest.raises(ValueError, match="running statistics"):
        fold_into(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="cannot fold"):
        fold_into(nn.ReLU(), nn.BatchNorm1d(4))


def test_fold_batchnorm_on_pointnet_keeps_the_logits_and_the_original():
    from pointnet_kit import create_model

    model = create_model("pointnet", num_classes=7, seed=0).double()
    with torch.no_grad():
        model.train()(torch.randn(8, 64, 3, dtype=torch.float64))  # non-trivial running statistics
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    points = torch.randn(3, 64, 3, dtype=torch.float64)
    with torch.no_grad():
        expected = model(points)["logits"]
        folded = fold_batchnorm(model)
        got = folded(points)["logits"]
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    # 3 + 2 + 3 + 3 shared-MLP layers and 2 + 2 + 2 FC layers carry a BatchNorm.
    assert folded.folded_batchnorms == 17
    assert not any(isinstance(m, nn.BatchNorm1d) for m in folded.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the original is untouched
