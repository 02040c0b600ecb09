"""What a task is: the loss, how logits become predictions, and the metrics a run reports.

The trainer, ``eval`` and ``predict`` see only this interface, so a new task is one file here plus
one :func:`register_task` line; nothing in the engine names a task.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..data.record import DataSpec
from ..errors import PointNetKitError

Batch = dict[str, Tensor]


class Meter:
    """Accumulates one split's metrics batch by batch.

    All state lives in ``self.state``: tensors that add up across batches and processes (counts and
    sums), so distributed evaluation all-reduces them with a sum and calls :meth:`compute` once.
    """

    def __init__(self, state: dict[str, Tensor]) -> None:
        self.state = state

    def update(self, logits: Tensor, batch: Batch) -> None:  # pragma: no cover - abstract
        """Add a batch: ``logits`` (B, K) or (B, N, K) float and the batch dict it came from."""
        raise NotImplementedError

    def reduce(self, fn: Callable[[Tensor], Any]) -> None:
        """Apply ``fn`` to every state tensor in place (e.g. ``all_reduce_sum``)."""
        for value in self.state.values():
            fn(value)

    def compute(self) -> dict[str, Any]:  # pragma: no cover - abstract
        """Plain-Python results: every name in the task's ``metric_names``, ``loss``, ``num_shapes``,
        and per-class / per-part tables."""
        raise NotImplementedError

    def _add(self, key: str, value: Tensor) -> None:
        state = self.state[key]
        state += value.to(state.device, state.dtype)


class Task:
    """Owns the loss, the predictions and the metrics of one kind of learning problem.

    Attributes:
        name: ``"classification"`` | ``"part_segmentation"``.
        metric_names: scalar metrics logged per epoch as ``val_<name>``.
        default_select_metric: the metric that picks the best checkpoint unless the config says otherwise.
        spec: the run's data record (class and part names).
        label_smoothing: of the cross entropy.
    """

    name: str = ""
    metric_names: tuple[str, ...] = ()
    default_select_metric: str = ""

    def __init__(self, spec: DataSpec, label_smoothing: float = 0.0) -> None:
        self.spec = spec
        self.label_smoothing = float(label_smoothing)

    @property
    def num_outputs(self) -> int:
        """Logits per shape (classification) or per point (segmentation): the model's ``num_classes``."""
        return self.spec.num_classes

    def loss(self, out: dict[str, Any], batch: Batch) -> Tensor:  # pragma: no cover - abstract
        """The training loss: the task's cross entropy plus ``sum(out["losses"].values())``."""
        raise NotImplementedError

    def predict(self, logits: Tensor, batch: Batch | None = None) -> Tensor:  # pragma: no cover - abstract
        """Predicted labels: ``(B,)`` or ``(B, N)`` int64."""
        raise NotImplementedError

    def accuracy_counts(self, logits: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:  # pragma: no cover
        """``(correct, total)`` of the training accuracy (shapes or points), for the per-epoch train_acc."""
        raise NotImplementedError

    def new_meter(self, device: torch.device | str = "cpu") -> Meter:  # pragma: no cover - abstract
        """An empty meter whose state lives on ``device``."""
        raise NotImplementedError


_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available to :func:`get_task` under ``cls.name``."""
    if cls.name in _TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    return sorted(_TASKS)


def get_task(name: str, spec: DataSpec, **kwargs: Any) -> Task:
    """The task ``name`` for data described by ``spec`` (``kwargs``: e.g. ``label_smoothing``)."""
    if name not in _TASKS:
        raise PointNetKitError(f"unknown task {name!r}; available: {', '.join(list_tasks())}")
    return _TASKS[name](spec, **kwargs)


def zeros(*shape: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> Tensor:
    return torch.zeros(*shape, dtype=dtype, device=device)
