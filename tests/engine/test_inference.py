"""predict_logits: the fast path (folded BN, micro-batches, chunked max pool) gives the model's logits."""

from __future__ import annotations

import pytest
import torch

from pointnet_kit import create_model
from pointnet_kit.engine import inference
from pointnet_kit.engine.inference import predict_logits


def _trained_pointnet(num_classes: int = 6):
    model = create_model("pointnet", num_classes=num_classes, seed=0)
    with torch.no_grad():
        model.train()(torch.randn(8, 96, 3, generator=torch.Generator().manual_seed(1)))  # running statistics
    return model.eval()


def test_predict_logits_equals_the_eval_model_across_batches_and_micro_batches(monkeypatch):
    model = _trained_pointnet()
    points = torch.randn(11, 96, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(points)["logits"]
    monkeypatch.setattr(inference, "MICRO_BATCH_POINTS", 96 * 2)  # micro-batches of two clouds
    got = predict_logits(model, points, batch_size=4)
    assert got.dtype == torch.float32 and got.shape == (11, 6)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not model.training


def test_predict_logits_applies_transform_and_keeps_training_flag():
    model = _trained_pointnet().train()
    points = torch.randn(5, 96, 3, generator=torch.Generator().manual_seed(3))
    flip = lambda batch: batch * torch.tensor([1.0, -1.0, 1.0])  # noqa: E731
    got = predict_logits(model, points, batch_size=2, transform=flip)
    assert model.training  # predict_logits runs an eval copy, the model itself is left as it was
    with torch.no_grad():
        expected = model.eval()(flip(points))["logits"]
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_predict_logits_empty_input():
    model = _trained_pointnet()
    assert predict_logits(model, torch.zeros(0, 96, 3)).shape == (0, 6)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="bf16 autocast on CPU needs oneDNN")
def test_predict_logits_bf16_is_close_to_float32():
    model = _trained_pointnet()
    points = torch.randn(8, 96, 3, generator=torch.Generator().manual_seed(4))
    full = predict_logits(model, points, amp="off")
    half = predict_logits(model, points, amp="bf16")
    assert half.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: logits agree to a few percent of their spread.
    assert (half - full).abs().max() <= 0.05 * full.abs().max()



def test_resolve_amp_auto_is_float32_on_cpu_even_with_native_bf16(monkeypatch):
    monkeypatch.setattr(inference, "cpu_has_native_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert inference.resolve_amp(cpu, "auto") == "off" and inference.resolve_amp(torch.device("cuda"), "auto") == "bf16"
    assert inference.resolve_amp(cpu, "bf16") == "bf16" and inference.resolve_amp(cpu, "fp16") == "fp16"
    model = _trained_pointnet()
    points = torch.randn(3, 64, 3, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(predict_logits(model, points), predict_logits(model, points, amp="off"), rtol=0, atol=0)

def test_cpu_has_native_bf16_reads_the_cpu_flags():
    flags = set()
    try:
        flags = {f for line in open("/proc/cpuinfo") if line.startswith("flags") for f in line.split(":", 1)[1].split()}
    except OSError:
        pass
    assert inference.cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})
