"""Engine: config, training loop, checkpoints and the one run reader, evaluation, export."""

from .checkpoint import load_checkpoint, load_model, load_run, save_checkpoint

__all__ = ["load_checkpoint", "load_model", "load_run", "save_checkpoint"]
