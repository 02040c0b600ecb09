"""The 1x1 conv == FC claims: each holds, a broken conversion fails, and the command reports them."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import pytest
import torch

from pointnet_kit import equivalence
from pointnet_kit.cli.main import main
from pointnet_kit.layers import SharedMLP

DTYPES = [torch.float32, torch.float64]
CLAIM_IDS = {"1", "1b", "1c", "2", "3", "4a", "4b", "5", "6", "7"}


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory) -> tuple[int, str, dict]:
    """``pointnet-kit equivalence --device cpu --json PATH`` once: exit status, printed table, JSON."""
    path = tmp_path_factory.mktemp("equivalence") / "out" / "equivalence.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(["equivalence", "--device", "cpu", "--json", str(path)])
    return status, printed.getvalue(), json.loads(path.read_text())


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("claim", sorted(CLAIM_IDS - {"5"}))
def test_claim_holds_on_cpu(cli_run, claim, dtype):
    _, _, report = cli_run
    (row,) = [r for r in report["results"] if r["claim"] == claim and r["dtype"] == dtype]
    tolerance = equivalence.TOLERANCES[getattr(torch, dtype)] * row["terms"] ** 0.5
    assert row["tolerance"] == pytest.approx(tolerance)
    for key in ("output_diff", "input_grad_diff", "weight_grad_diff"):
        assert 0 <= row[key] <= tolerance
    assert row["passed"]
    assert len(row["params"]) == len(row["formulations"]) == len(row["ms_per_call"]) in (2, 3)
    assert len(set(row["params"])) == 1  # the same weights, however they are laid out
    assert all(ms > 0 for ms in row["ms_per_call"])


def test_cli_reports_every_claim(cli_run):
    status, printed, report = cli_run
    assert status == 0 and report["passed"] is True and report["device"] == "cpu"
    assert {row["claim"] for row in report["results"]} == CLAIM_IDS
    assert printed.rstrip().endswith("equivalence.json")  # "wrote PATH"
    assert "All 9 equivalence claims hold in float32 and float64." in printed
    for claim in CLAIM_IDS:
        assert f"\n{claim} " in printed


def test_fc_image_claim_counts_614656_weights():
    result = equivalence.claim_fc_image_conv(dtype=torch.float64)
    assert result.params == [784 * 784 + 784] * 3 and result.terms == 784


def test_bottleneck_counts():
    result = equivalence.claim_bottleneck_counts(size=8)
    plain, bottleneck = 3 * 3 * 64 * 64, 64 * 32 + 3 * 3 * 32 * 32 + 32 * 64
    assert result.params == [plain, bottleneck]
    assert result.flops == [2 * 8 * 8 * plain, 2 * 8 * 8 * bottleneck]  # every conv keeps 8x8
    assert result.is_count and result.passed and f"{plain / bottleneck:.2f}x" in result.note


def _perturbed(convert):
    """A converter that copies the weights and then nudges one of them: a broken conversion."""

    def broken(module, *args, **kwargs):
        out = convert(module, *args, **kwargs)
        with torch.no_grad():
            next(out.parameters()).view(-1)[0] += 1e-3
        return out

    return broken


@pytest.mark.parametrize(
    "claim, converter",
    [
        (equivalence.claim_conv1d_linear, "conv1d_to_linear"),
        (equivalence.claim_conv2d_linear, "conv2d_to_linear"),
        (equivalence.claim_fc_image_conv, "linear_to_conv2d"),
        (equivalence.claim_class_maps, "linear_to_conv1d"),
        (equivalence.claim_set_abstraction, "conv2d_to_linear"),
        (equivalence.claim_edge_conv, "conv2d_to_linear"),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_broken_conversion_fails_the_claim(monkeypatch, claim, converter, dtype):
    monkeypatch.setattr(equivalence, converter, _perturbed(getattr(equivalence, converter)))
    result = claim(dtype=dtype)
    assert not result.passed
    assert max(result.output_diff, result.weight_grad_diff) > result.tolerance


def test_broken_shared_mlp_conversion_fails_the_claim(monkeypatch):
    monkeypatch.setattr(SharedMLP, "converted", _perturbed(SharedMLP.converted))
    assert not equivalence.claim_shared_mlp_backends(dtype=torch.float64).passed


def test_set_abstraction_claim_fails_when_the_max_is_dropped(monkeypatch):
    """The order half of claim 6 rests on the max over K: reading one neighbour instead of pooling,
    the shuffled formulation differs (so the shuffle is real)."""
    monkeypatch.setattr(torch.Tensor, "amax", lambda self, dim: self.select(dim, 1))
    result = equivalence.claim_set_abstraction(dtype=torch.float64)
    monkeypatch.undo()
    assert not result.passed and result.output_diff > result.tolerance


def test_edge_conv_claim_counts_edges():
    result = equivalence.claim_edge_conv(dtype=torch.float64)
    assert result.passed and result.params == [2 * 32 * 64] * 3  # no bias, as in DGCNN
    assert result.terms == 2 * 48 * 8  # weight gradients sum over B * N * k edges


def test_no_tf32_turns_tf32_off_and_restores():
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9

        def read():
            return torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision

        off = ("ieee", "ieee")
    else:

        def read():
            return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32

        off = (False, False)
    before = read()
    with equivalence.no_tf32():
        assert read() == off
    assert read() == before


def test_cli_exits_1_when_a_claim_fails(monkeypatch, capsys):
    good = equivalence.claim_class_maps(dtype=torch.float64)
    bad = dataclasses.replace(good, output_diff=1.0, passed=False)
    monkeypatch.setattr(equivalence, "run_all", lambda device, dtypes, seed: [good, bad])
    assert main(["equivalence", "--device", "cpu"]) == 1
    assert "FAILED: 4a (float64)" in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA error")
def test_cli_cuda_without_cuda_is_a_clear_error(capsys):
    assert main(["equivalence", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


@pytest.mark.gpu
def test_claims_hold_on_cuda():
    results = equivalence.run_all("cuda")
    failed = [
        (r.claim, r.dtype, r.output_diff, r.input_grad_diff, r.weight_grad_diff)
        for r in results
        if not r.passed
    ]
    assert failed == []
