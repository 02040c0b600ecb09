"""Point cloud augmentation that runs on a whole batch at once, on the batch's device.

Every transform takes a batch dict ``{"points": (B, N, C), "labels": (B,)[, "part_labels": (B, N)]}``
(``C`` = 3 xyz or 6 xyz + normals) and returns a new dict on the same device; there is no per-sample
Python loop. Per-point ops (shuffle, dropout) move ``part_labels`` with their points. Normals are
rotated with the points, re-normalised after an anisotropic scale, and never shifted or jittered.

A bare points tensor ``(B, N, C)``, a single cloud ``(N, C)`` and NumPy arrays work too (the same
maths on a batch of one), so the same objects serve a per-sample ``Dataset`` pipeline::

    augment = build_batch_transforms([{"name": "rotate_up"}, {"name": "jitter", "sigma": 0.02}], up_axis="y")
    batch = augment(batch, generator)           # batch dict in, batch dict out, e.g. on the GPU
    points = augment(points)                    # (B, N, 3) tensor in, tensor out
    cloud = augment(np_cloud)                   # (N, 3) ndarray in, ndarray out

Rotations about the data's up axis have one implementation, :func:`axis_rotation` (``rotate_up``;
``rotate_z`` is its old name and still works).

Randomness: pass ``generator`` (a ``torch.Generator`` on the points' device) to a call, or build the
transform with ``seed=`` and it keeps its own generator per device; with neither, the global torch
RNG is used.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .record import UP_AXES

Tensor = torch.Tensor

__all__ = [
    "change_up_axis",
    "BatchTransform",
    "BatchCompose",
    "RotateUp",
    "RotateZ",
    "RotateSO3",
    "Scale",
    "Shift",
    "Jitter",
    "Dropout",
    "Shuffle",
    "TRANSFORMS",
    "build_batch_transforms",
    "random_rotation_matrices",
    "axis_rotation",
]

Batch = dict[str, Tensor]


class BatchTransform:
    """Base class: handles batch dicts vs bare points, ``(N, C)`` vs ``(B, N, C)``, NumPy vs torch,
    and the generator.

    Subclasses implement :meth:`apply` on a ``(B, N, C)`` float tensor; per-point ops that reorder or
    replace points implement :meth:`apply_batch` too, so ``part_labels`` follow their points.
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        raise NotImplementedError

    def apply_batch(self, batch: Batch, generator: torch.Generator | None) -> Batch:
        """The transform on a batch dict with ``points (B, N, C)``; other keys pass through unless the
        transform moves points."""
        return {**batch, "points": self.apply(batch["points"], generator)}

    def _generator(self, device: torch.device) -> torch.Generator | None:
        if self.seed is None:
            return None
        if device not in self._generators:
            self._generators[device] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[device]

    def __call__(self, points: Batch | Tensor | np.ndarray, generator: torch.Generator | None = None) -> Batch | Tensor | np.ndarray:
        if isinstance(points, dict):
            return self._call_batch(points, generator)
        is_numpy = isinstance(points, np.ndarray)
        x = torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)) if is_numpy else points
        if x.dim() not in (2, 3) or x.shape[-1] not in (3, 6):
            raise ValueError(f"{type(self).__name__}: points must be (N, C) or (B, N, C) with C in (3, 6), got {tuple(x.shape)}")
        single = x.dim() == 2
        if single:
            x = x.unsqueeze(0)
        if generator is None:
            generator = self._generator(x.device)
        out = self.apply(x, generator)
        if single:
            out = out.squeeze(0)
        return out.numpy() if is_numpy else out

    def _call_batch(self, batch: Batch, generator: torch.Generator | None) -> Batch:
        x = batch["points"]
        if x.dim() not in (2, 3) or x.shape[-1] not in (3, 6):
            raise ValueError(f"{type(self).__name__}: batch['points'] must be (N, C) or (B, N, C) with C in (3, 6), got {tuple(x.shape)}")
        single = x.dim() == 2
        if single:  # one sample (a Dataset item): a batch of one
            batch = {k: v.unsqueeze(0) for k, v in batch.items()}
        if "part_labels" in batch and batch["part_labels"].shape != batch["points"].shape[:2]:
            raise ValueError(f"part_labels {tuple(batch['part_labels'].shape)} do not match points {tuple(batch['points'].shape)}")
        out = self.apply_batch(batch, generator if generator is not None else self._generator(x.device))
        return {k: v.squeeze(0) for k, v in out.items()} if single else out

    def _params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={_fmt(v)}" for k, v in self._params().items())
        return f"{type(self).__name__}({args})"


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value)


def _uniform(shape: tuple[int, ...], low: float, high: float, like: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype) * (high - low) + low


def _rotate(points: Tensor, rotation: Tensor) -> Tensor:
    """Apply ``rotation (B, 3, 3)`` to xyz and, when present, normals: row vectors, ``p @ R^T``."""
    rt = rotation.transpose(1, 2).to(points.dtype)
    out = [points[..., :3] @ rt]
    if points.shape[-1] == 6:
        out.append(points[..., 3:] @ rt)
    return torch.cat(out, dim=-1)


def axis_rotation(up_axis: str, angle: float | Tensor) -> Tensor:
    """Rotations by ``angle`` (radians, counter-clockwise seen from the positive axis) about the
    ``up_axis``: ``(3, 3)`` for a float, ``(B, 3, 3)`` for a ``(B,)`` tensor of angles, on its device.

    The one rotation-about-an-axis of the package: augmentation, test-time votes and the embedded
    datasets' generators use it.
    """
    if up_axis not in UP_AXES:
        raise ConfigError(f"up_axis must be one of x, y, z, got {up_axis!r}")
    theta = torch.as_tensor(angle, dtype=torch.float32 if not torch.is_tensor(angle) else angle.dtype)
    c, s = torch.cos(theta), torch.sin(theta)
    o, l = torch.zeros_like(theta), torch.ones_like(theta)
    rows = {
        "z": [c, -s, o, s, c, o, o, o, l],
        "y": [c, o, s, o, l, o, -s, o, c],
        "x": [l, o, o, o, c, -s, o, s, c],
    }[up_axis]
    return torch.stack(rows, dim=-1).reshape(*theta.shape, 3, 3)



def change_up_axis(points: np.ndarray, from_axis: str, to_axis: str) -> np.ndarray:
    """``points (..., N, C)`` (xyz, then normals when ``C == 6``) turned a quarter turn so that what
    pointed along ``from_axis`` points along ``to_axis`` (a y-up ShapeNet shape for a z-up run).

    A proper rotation (no mirror) about the third axis, by :func:`axis_rotation`.
    """
    if from_axis not in UP_AXES or to_axis not in UP_AXES:
        raise ConfigError(f"up axes must be x, y or z, got {from_axis!r} and {to_axis!r}")
    points = np.asarray(points)
    if from_axis == to_axis:
        return points
    (about,) = set(UP_AXES) - {from_axis, to_axis}
    forward = (UP_AXES.index(to_axis) - UP_AXES.index(from_axis)) % 3 == 1  # x->y, y->z, z->x: a +90 degree turn
    matrix = axis_rotation(about, math.pi / 2 if forward else -math.pi / 2).double().numpy().round()  # exact quarter turn
    out = points.astype(np.float64, copy=True)
    out[..., :3] = points[..., :3] @ matrix.T
    if points.shape[-1] == 6:
        out[..., 3:] = points[..., 3:] @ matrix.T
    return out.astype(points.dtype)

class RotateUp(BatchTransform):
    """Random rotation about the data's up axis by an angle uniform in ``[-angle/2, angle/2]``
    (default full circle).

    ``up_axis`` comes from the run's :class:`~pointnet_kit.data.record.DataSpec` (``z`` for ModelNet
    OFF meshes, ../shared data and the embedded datasets; ``y`` for the 2048 HDF5 release and
    ShapeNetPart). ``axis`` is the old spelling of ``up_axis``, accepted so old configs still load.
    """

    def __init__(self, angle: float = 2 * math.pi, up_axis: str = "z", seed: int | None = None, axis: str | None = None) -> None:
        super().__init__(seed)
        up_axis = axis or up_axis
        if up_axis not in UP_AXES:
            raise ConfigError(f"{self._config_name()}: up_axis must be one of x, y, z, got {up_axis!r}")
        self.angle = float(angle)
        self.up_axis = up_axis

    @classmethod
    def _config_name(cls) -> str:
        return "rotate_z" if cls is RotateZ else "rotate_up"

    def _params(self) -> dict[str, Any]:
        return {"angle": self.angle, "up_axis": self.up_axis, "seed": self.seed}

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        theta = _uniform((points.shape[0],), -self.angle / 2, self.angle / 2, points, generator)
        return _rotate(points, axis_rotation(self.up_axis, theta))


class RotateZ(RotateUp):
    """The old name of :class:`RotateUp` (config name ``rotate_z``): the same rotation, about
    ``up_axis`` (which is ``z`` unless the data says otherwise)."""


def random_rotation_matrices(
    batch: int, device: torch.device | str = "cpu", generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> Tensor:
    """``(batch, 3, 3)`` rotations uniform on SO(3) (normalised Gaussian quaternions)."""
    q = torch.randn(batch, 4, generator=generator, device=device, dtype=dtype)
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(1)
    return torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=1,
    ).view(batch, 3, 3)


class RotateSO3(BatchTransform):
    """Random rotation uniform over all of SO(3)."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        rotation = random_rotation_matrices(points.shape[0], points.device, generator, points.dtype)
        return _rotate(points, rotation)


class Scale(BatchTransform):
    """Random scale uniform in ``[low, high]``, one factor per axis (``anisotropic``) or one per cloud.

    Normals follow the inverse-transpose rule (``n / s``, re-normalised), so they stay normals.
    """

    def __init__(self, low: float = 0.8, high: float = 1.25, anisotropic: bool = True, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0 < low <= high:
            raise ConfigError(f"scale: need 0 < low <= high, got low={low}, high={high}")
        self.low, self.high, self.anisotropic = float(low), float(high), bool(anisotropic)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        s = _uniform((points.shape[0], 1, 3 if self.anisotropic else 1), self.low, self.high, points, generator)
        out = [points[..., :3] * s]
        if points.shape[-1] == 6:
            n = points[..., 3:] / s
            out.append(n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.cat(out, dim=-1)


class Shift(BatchTransform):
    """Random translation of each cloud, uniform in ``[-shift, shift]`` per axis (normals untouched)."""

    def __init__(self, shift: float = 0.1, seed: int | None = None) -> None:
        super().__init__(seed)
        self.shift = float(shift)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        t = _uniform((points.shape[0], 1, 3), -self.shift, self.shift, points, generator)
        return torch.cat([points[..., :3] + t, points[..., 3:]], dim=-1)


class Jitter(BatchTransform):
    """Per-point Gaussian noise of std ``sigma``, clipped to ``[-clip, clip]`` (normals untouched)."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05, seed: int | None = None) -> None:
        super().__init__(seed)
        if sigma < 0 or clip <= 0:
            raise ConfigError(f"jitter: need sigma >= 0 and clip > 0, got sigma={sigma}, clip={clip}")
        self.sigma, self.clip = float(sigma), float(clip)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        noise = torch.randn(points.shape[:2] + (3,), generator=generator, device=points.device, dtype=points.dtype)
        noise = (noise * self.sigma).clamp_(-self.clip, self.clip)
        return torch.cat([points[..., :3] + noise, points[..., 3:]], dim=-1)


class Dropout(BatchTransform):
    """Random point dropout as in PointNet++: each cloud draws a ratio in ``[0, max_ratio]`` and every
    point is dropped with that probability; dropped points become copies of the first point, so the
    cloud keeps its shape ``(N, C)``."""

    def __init__(self, max_ratio: float = 0.875, seed: int | None = None) -> None:
        super().__init__(seed)
        if not 0 <= max_ratio < 1:
            raise ConfigError(f"dropout: max_ratio must be in [0, 1), got {max_ratio}")
        self.max_ratio = float(max_ratio)

    def _drop(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        """``(B, N)`` bool: which points become copies of the first point."""
        b, n = points.shape[:2]
        ratio = _uniform((b, 1), 0.0, self.max_ratio, points, generator)
        return torch.rand((b, n), generator=generator, device=points.device, dtype=points.dtype) < ratio

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        return torch.where(self._drop(points, generator).unsqueeze(-1), points[:, :1], points)

    def apply_batch(self, batch: Batch, generator: torch.Generator | None) -> Batch:
        points = batch["points"]
        drop = self._drop(points, generator)
        out = {**batch, "points": torch.where(drop.unsqueeze(-1), points[:, :1], points)}
        if "part_labels" in batch:  # a copy of the first point carries the first point's part
            parts = batch["part_labels"]
            out["part_labels"] = torch.where(drop, parts[:, :1], parts)
        return out


class Shuffle(BatchTransform):
    """Random permutation of the points of each cloud."""

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        b, n, c = points.shape
        order = torch.rand((b, n), generator=generator, device=points.device).argsort(dim=1)
        return torch.gather(points, 1, order.unsqueeze(-1).expand(b, n, c))

    def apply_batch(self, batch: Batch, generator: torch.Generator | None) -> Batch:
        points = batch["points"]
        b, n, c = points.shape
        order = torch.rand((b, n), generator=generator, device=points.device).argsort(dim=1)
        out = {**batch, "points": torch.gather(points, 1, order.unsqueeze(-1).expand(b, n, c))}
        if "part_labels" in batch:
            out["part_labels"] = torch.gather(batch["part_labels"], 1, order)
        return out


class BatchCompose(BatchTransform):
    """Apply transforms in order, sharing one generator (``seed`` here, or the call's ``generator``)."""

    def __init__(self, transforms: Sequence[BatchTransform], seed: int | None = None) -> None:
        super().__init__(seed)
        self.transforms = list(transforms)

    def apply(self, points: Tensor, generator: torch.Generator | None) -> Tensor:
        for t in self.transforms:
            points = t.apply(points, generator if generator is not None else t._generator(points.device))
        return points

    def apply_batch(self, batch: Batch, generator: torch.Generator | None) -> Batch:
        for t in self.transforms:
            batch = t.apply_batch(batch, generator if generator is not None else t._generator(batch["points"].device))
        return batch

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        if not self.transforms:
            return f"{type(self).__name__}([])"
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        seed = "" if self.seed is None else f", seed={self.seed}"
        return f"{type(self).__name__}([{inner}\n]{seed})"


TRANSFORMS: dict[str, type[BatchTransform]] = {
    "rotate_up": RotateUp,
    "rotate_z": RotateZ,
    "rotate_so3": RotateSO3,
    "scale": Scale,
    "shift": Shift,
    "jitter": Jitter,
    "dropout": Dropout,
    "shuffle": Shuffle,
}


def build_batch_transforms(specs: Sequence[Mapping[str, Any]], seed: int | None = None, up_axis: str | None = None) -> BatchCompose:
    """Build a :class:`BatchCompose` from config specs like ``[{"name": "jitter", "sigma": 0.02}, ...]``.

    ``up_axis`` (the run's ``spec.up_axis``) is what ``rotate_up`` / ``rotate_z`` turn about unless
    their spec names one.

    Raises:
        ConfigError: a spec that is not a mapping, an unknown ``name``, or an unknown keyword.
    """
    transforms = []
    for i, spec in enumerate(specs or []):
        if not isinstance(spec, Mapping) or "name" not in spec:
            raise ConfigError(f"augmentation #{i}: expected a mapping with a 'name' key, got {spec!r}")
        kwargs = dict(spec)
        name = kwargs.pop("name")
        if name in ("rotate_up", "rotate_z") and up_axis is not None and "up_axis" not in kwargs and "axis" not in kwargs:
            kwargs["up_axis"] = up_axis
        if name not in TRANSFORMS:
            raise ConfigError(f"augmentation #{i}: unknown name {name!r} (choose from {', '.join(TRANSFORMS)})")
        cls = TRANSFORMS[name]
        allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ConfigError(f"augmentation {name!r}: unknown option(s) {', '.join(unknown)} (allowed: {', '.join(allowed)})")
        try:
            transforms.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"augmentation {name!r}: {exc}") from exc
    return BatchCompose(transforms, seed=seed)
