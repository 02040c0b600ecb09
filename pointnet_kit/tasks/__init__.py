"""Tasks: the loss, predictions and metrics of classification and part segmentation; :func:`get_task`."""

from . import classification, segmentation  # noqa: F401  (registers the tasks)
from .base import Meter, Task, get_task, list_tasks, register_task
from .classification import ClassificationTask
from .segmentation import SegmentationTask

__all__ = ["ClassificationTask", "Meter", "SegmentationTask", "Task", "get_task", "list_tasks", "register_task"]
