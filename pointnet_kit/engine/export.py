"""Export a checkpoint to ONNX or TorchScript, checked against PyTorch on random input."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import CheckpointError, PointNetKitError
from .checkpoint import load_model

FORMATS = ("onnx", "torchscript")


class LogitsOnly(nn.Module):
    """Wraps a model so it maps ``points (B, N, C)`` to ``logits`` alone (what deployment needs)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.model(points)["logits"]


def export_checkpoint(
    checkpoint: str | Path,
    out: str | Path,
    format: str = "onnx",
    num_points: int = 1024,
    check_points: tuple[int, ...] = (1024, 517),
    seed: int = 0,
    rtol: float = 1e-5,
) -> dict[str, Any]:
    """Write the model to ``out`` and check it against PyTorch at several point counts.

    The exported model takes ``points: (B, N, C)`` float32 for any ``B`` and ``N``.
    Fails when the largest difference exceeds ``rtol`` times the largest logit magnitude (at least 1).
    Returns ``{"path", "format", "max_abs_diff", "max_rel_diff", "checked": [(batch, points), ...]}``.
    """
    if format not in FORMATS:
        raise PointNetKitError(f"unknown export format {format!r}; use {' or '.join(FORMATS)}")
    model, _ = load_model(checkpoint)
    wrapper = LogitsOnly(model).eval()
    in_channels = model.in_channels
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(2, num_points, in_channels, generator=generator)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer/exporter deprecation chatter
        if format == "torchscript":
            traced = torch.jit.trace(wrapper, example)
            traced.save(str(out))
            loaded = torch.jit.load(str(out))
            run = lambda x: loaded(x).detach().numpy()  # noqa: E731
        else:
            try:
                import onnxruntime as ort
            except ImportError as exc:
                raise PointNetKitError("ONNX export needs onnx and onnxruntime: pip install 'pointnet-kit[export]'") from exc
            torch.onnx.export(
                wrapper,
                (example,),
                str(out),
                dynamo=False,
                input_names=["points"],
                output_names=["logits"],
                dynamic_axes={"points": {0: "batch", 1: "num_points"}, "logits": {0: "batch"}},
                opset_version=17,
            )
            session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
            run = lambda x: session.run(None, {"points": x.numpy()})[0]  # noqa: E731
    checked, worst, worst_rel = [], 0.0, 0.0
    for batch, n in [(2, check_points[0])] + [(3, n) for n in check_points[1:]]:
        x = torch.randn(batch, n, in_channels, generator=generator)
        with torch.no_grad():
            expected = wrapper(x).numpy()
        diff = float(np.abs(run(x) - expected).max())
        worst = max(worst, diff)
        # Relative to the logits' scale: other kernels sum in another order, so float32 rounding differs.
        worst_rel = max(worst_rel, diff / max(float(np.abs(expected).max()), 1.0))
        checked.append([batch, n])
    if worst_rel > rtol:
        raise CheckpointError(
            f"exported {format} model differs from PyTorch by {worst:.2e} ({worst_rel:.2e} of the logits' scale, > {rtol:.0e})"
        )
    return {"path": str(out), "format": format, "max_abs_diff": worst, "max_rel_diff": worst_rel, "checked": checked}
