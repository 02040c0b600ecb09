"""Export a checkpoint for deployment: ``torch.export`` (``.pt2``) or ONNX (the ``dynamo=True`` exporter).

The exported program maps ``points (B, N, C) float32`` (plus ``category (B,) int64`` for segmentation
models that take one) to ``logits`` ((B, K), or (B, N, K) for segmentation), with ``B`` and ``N``
dynamic where the model allows. What a deployment needs to feed it and read it travels inside the
file (ONNX ``metadata_props``, ``.pt2`` extra files): class names, points per shape, channels, up
axis, normalisation. Every export is checked against PyTorch before it is reported as written.

Only the model contract is used: ``model.in_channels``, ``model.task``, ``model.num_categories``,
``model(points, category)["logits"]``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..data.record import DataSpec
from ..errors import CheckpointError, PointNetKitError

FORMATS = ("pt2", "onnx")
META_KEY = "pointnet_kit"
"""Every metadata entry is stored under ``pointnet_kit.<name>`` as a JSON value (ONNX props are strings)."""
PT2_EXTRA = "pointnet_kit.json"


class LogitsOnly(nn.Module):
    """``points (B, N, C)`` [, ``category (B,)``] -> ``logits``: what deployment needs of a model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, points: torch.Tensor, category: torch.Tensor | None = None) -> torch.Tensor:
        return self.model(points, category)["logits"] if category is not None else self.model(points)["logits"]


def export_metadata(spec: DataSpec, model: nn.Module, ckpt: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a deployment needs to feed the model and read its output: the run's :class:`DataSpec`
    (``engine.checkpoint.load_run`` gives it, also for checkpoints from before specs) and the
    checkpoint's model name and epoch."""
    ckpt = ckpt or {}
    meta = {k: getattr(spec, k) for k in ("num_points", "channels", "up_axis", "class_names", "normalization")}
    if spec.part_names:
        meta["part_names"] = list(spec.part_names)
        meta["category_parts"] = spec.category_parts
    if not meta["class_names"]:
        raise CheckpointError("the run's data spec has no class names: cannot describe the model's output")
    if len(meta["channels"]) != model.in_channels:
        raise CheckpointError(f"checkpoint data has {len(meta['channels'])} channels, the model takes {model.in_channels}")
    return {
        "format_version": 1,
        "pointnet_kit_version": __version__,
        "model_name": ckpt.get("model_name", type(model).__name__),
        "task": getattr(model, "task", ckpt.get("task", "classification")),
        "epoch": ckpt.get("epoch"),
        **meta,
        "inputs": ["points", "category"] if getattr(model, "num_categories", 0) else ["points"],
    }


def _check_finite_weights(model: nn.Module) -> None:
    for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"refusing to export: weight {name!r} holds NaN or inf")


def _example_inputs(model: nn.Module, batch: int, n: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    points = torch.randn(batch, n, model.in_channels, generator=generator)
    if getattr(model, "num_categories", 0):
        return points, torch.randint(0, model.num_categories, (batch,), generator=generator)
    return (points,)


def _export_program(wrapper: LogitsOnly, example: tuple[torch.Tensor, ...]) -> tuple[Any, list[str]]:
    """``torch.export`` with batch and point count dynamic, else batch only, else static; returns (program, dims)."""
    Dim = torch.export.Dim
    attempts = [("batch", "num_points"), ("batch",), ()]
    last: Exception | None = None
    for dims in attempts:
        axes = {0: Dim("batch", min=1)} if "batch" in dims else {}
        if "num_points" in dims:
            axes[1] = Dim("num_points", min=1)
        shapes: dict[str, Any] = {"points": axes or None}
        if len(example) == 2:
            shapes["category"] = {0: axes[0]} if "batch" in dims else None
        try:
            return torch.export.export(wrapper, example, dynamic_shapes=shapes), list(dims)
        except Exception as exc:  # noqa: BLE001 - a model that specializes a dim: try fewer dynamic dims
            last = exc
    raise PointNetKitError(f"torch.export cannot trace this model: {str(last).strip().splitlines()[0]}") from last


def export_model(
    model: nn.Module,
    out: str | Path,
    format: str,
    metadata: dict[str, Any],
    check_points: Sequence[int] = (),
    seed: int = 0,
    rtol: float = 1e-4,
) -> dict[str, Any]:
    """Write ``model`` to ``out`` (``.pt2`` or ``.onnx``) with ``metadata`` embedded, then check it.

    The check runs the exported file (loaded back with :func:`load_exported`) and PyTorch on seeded
    random batches, at ``metadata["num_points"]`` and the ``check_points`` counts when the point count
    is dynamic, and fails when ``max |diff| > rtol * max |logits|`` or anything is non-finite.
    Returns ``{"path", "format", "dynamic", "max_abs_diff", "max_rel_diff", "checked": [[B, N], ...]}``.
    """
    if format not in FORMATS:
        raise PointNetKitError(f"unknown export format {format!r}; use {' or '.join(FORMATS)}")
    model = model.eval()
    _check_finite_weights(model)
    wrapper = LogitsOnly(model).eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(seed)
    num_points = int(metadata["num_points"])
    program, dynamic = _export_program(wrapper, _example_inputs(model, 2, num_points, generator))
    metadata = {**metadata, "dynamic": dynamic}
    # Written beside the target and renamed over it only once checked: a failed or killed export never
    # leaves a half-written or unchecked model under the user's name.
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")
    try:
        if format == "pt2":
            torch.export.save(program, str(partial), extra_files={PT2_EXTRA: json.dumps(metadata)})
        else:
            try:
                import onnxscript  # noqa: F401  (the dynamo exporter's dependency)
            except ImportError as exc:
                raise PointNetKitError("ONNX export needs onnx, onnxscript and onnxruntime: pip install 'pointnet-kit[export]'") from exc
            onnx_program = torch.onnx.export(
                program,
                dynamo=True,
                input_names=list(metadata["inputs"]),
                output_names=["logits"],
                verbose=False,
            )
            for key, value in metadata.items():
                onnx_program.model.metadata_props[f"{META_KEY}.{key}"] = json.dumps(value)
            onnx_program.save(str(partial))
        predict, _ = load_exported(partial)
        shapes = [(2, num_points), (1, num_points)]
        if "num_points" in dynamic:
            shapes += [(3, n) for n in check_points or (max(1, num_points // 2) + 1,)]
        if "batch" not in dynamic:
            shapes = [(2, n) for _, n in shapes]
        checked, worst, worst_rel = [], 0.0, 0.0
        for batch, n in shapes:
            inputs = _example_inputs(model, batch, n, generator)
            with torch.no_grad():
                expected = wrapper(*inputs).numpy()
            got = predict(*(x.numpy() for x in inputs))
            if not (np.isfinite(expected).all() and np.isfinite(got).all()):
                raise CheckpointError(f"refusing the export: non-finite logits on a random batch {batch}x{n}")
            diff = float(np.abs(got - expected).max())
            # Relative to the logits' scale: another runtime sums in another order, so float32 rounding differs.
            rel = diff / max(float(np.abs(expected).max()), np.finfo(np.float32).tiny)
            worst, worst_rel = max(worst, diff), max(worst_rel, rel)
            checked.append([batch, n])
        if worst_rel > rtol:
            raise CheckpointError(
                f"exported {format} model differs from PyTorch by {worst:.2e} ({worst_rel:.2e} of the logits' scale, > {rtol:.0e}); not written"
            )
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, out)
    return {"path": str(out), "format": format, "dynamic": dynamic, "max_abs_diff": worst, "max_rel_diff": worst_rel, "checked": checked}


def export_checkpoint(
    checkpoint: str | Path, out: str | Path, format: str | None = None, seed: int = 0, rtol: float = 1e-4
) -> dict[str, Any]:
    """Export the model of a checkpoint (or run directory); ``format`` defaults to ``out``'s suffix."""
    from .checkpoint import load_run

    format = format or Path(out).suffix.lstrip(".")
    if format not in FORMATS:
        raise PointNetKitError(f"cannot tell the export format from {out!r}: use --format {' or '.join(FORMATS)} or a .pt2/.onnx name")
    from .inference import inference_model

    model, _task, spec, ckpt = load_run(checkpoint)
    # The inference path eval and predict run: BatchNorm folded into the layer before it (exact to rounding).
    fast = inference_model(model.cpu())
    fast.model_name, fast.model_kwargs = model.model_name, model.model_kwargs
    return export_model(fast, out, format, export_metadata(spec, model, ckpt), seed=seed, rtol=rtol)


def load_exported(path: str | Path) -> tuple[Callable[..., np.ndarray], dict[str, Any]]:
    """Load an exported ``.onnx`` (onnxruntime) or ``.pt2`` (``torch.export.load``) file.

    Returns ``(predict, metadata)``: ``predict(points (B, N, C) float32 [, category (B,) int64]) -> logits``
    as NumPy arrays, and the metadata written by :func:`export_model`.
    """
    path = Path(path)
    if not path.is_file():
        raise PointNetKitError(f"exported model not found: {path}")
    if path.suffix == ".onnx":
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise PointNetKitError("running .onnx files needs onnxruntime: pip install 'pointnet-kit[export]'") from exc
        try:
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for corrupt files
            raise PointNetKitError(f"cannot load {path}: {str(exc).strip().splitlines()[0]}") from exc
        props = session.get_modelmeta().custom_metadata_map
        metadata = {k[len(META_KEY) + 1 :]: json.loads(v) for k, v in props.items() if k.startswith(META_KEY + ".")}
        names = [i.name for i in session.get_inputs()]

        def predict(*arrays: np.ndarray) -> np.ndarray:
            return session.run(["logits"], dict(zip(names, arrays)))[0]

    elif path.suffix == ".pt2":
        extra = {PT2_EXTRA: ""}
        try:
            module = torch.export.load(str(path), extra_files=extra).module()
        except Exception as exc:  # noqa: BLE001 - a truncated or foreign archive
            raise PointNetKitError(f"cannot load {path}: {str(exc).strip().splitlines()[0]}") from exc
        metadata = json.loads(extra[PT2_EXTRA]) if extra[PT2_EXTRA] else {}

        def predict(*arrays: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return module(*(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()

    else:
        raise PointNetKitError(f"{path}: not an exported model (.onnx or .pt2)")
    if not metadata.get("class_names"):
        raise PointNetKitError(f"{path} carries no pointnet-kit metadata (class names, points): export it with pointnet-kit export")
    return predict, metadata


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` names an exported model (``predict`` then runs it instead of a checkpoint)."""
    return Path(path).suffix in (".onnx", ".pt2")


def predict_exported(
    path: str | Path, files: Sequence[str | Path], topk: int = 3, seed: int = 0, votes: int = 1
) -> list[dict[str, Any]]:
    """Classify files with an exported model, sampled and normalised as its metadata says.

    With ``votes > 1`` the logits are averaged over rotations about the up axis at ``2*pi*k/votes``.
    Returns the same records as ``predict`` with a checkpoint: ``{"file", "predictions": [{"class", "prob"}]}``.
    """
    from ..data import load_points
    from ..data.transforms import axis_rotation

    predict, meta = load_exported(path)
    if meta.get("task", "classification") != "classification":
        raise PointNetKitError(f"{path} is a {meta['task']} model; predict classifies shapes")
    if votes < 1:
        raise PointNetKitError(f"--votes must be >= 1, got {votes}")
    normals = len(meta["channels"]) == 6
    clouds = np.stack([load_points(f, int(meta["num_points"]), seed=seed, normals=normals) for f in files])
    logits = 0.0
    for k in range(votes):
        matrix = axis_rotation(meta["up_axis"], 2 * math.pi * k / votes).numpy()
        rotated = clouds.copy()
        rotated[..., :3] = clouds[..., :3] @ matrix.T
        if normals:
            rotated[..., 3:6] = clouds[..., 3:6] @ matrix.T
        logits = logits + predict(rotated.astype(np.float32))
    logits = np.asarray(logits, dtype=np.float64) / votes
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    names = meta["class_names"]
    order = np.argsort(-probs, axis=1)[:, : min(topk, probs.shape[1])]
    return [
        {"file": str(f), "predictions": [{"class": names[i], "prob": round(float(probs[row, i]), 4)} for i in order[row]]}
        for row, f in enumerate(files)
    ]
