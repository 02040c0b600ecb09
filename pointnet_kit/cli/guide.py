"""What makes the CLI guide its user: one help convention for every parser, and the hints it prints.

* :func:`finish_parser` walks the whole parser tree once it is built, whoever built each subparser:
  no prefix abbreviations (``--vote 3`` is an error, not ``--votes``), defaults shown in ``--help``.
* :func:`next_steps` is what ``train`` prints when it is done; :func:`tensorboard_missing` the one
  warning when ``runtime.tensorboard=true`` cannot be honoured.

No torch/numpy here: this module is imported for ``--help``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any, TextIO


class HelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` after an option's help when the default says something (not None/False/empty)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "%(default)" in text or "default" in text.lower() or not _meaningful_default(action):
            return text
        return f"{text} (default: %(default)s)".strip()


def _meaningful_default(action: argparse.Action) -> bool:
    default = action.default
    if default is None or default is False or default is argparse.SUPPRESS:
        return False
    if isinstance(default, (list, tuple, str)) and not default:
        return False
    if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._StoreTrueAction)):
        return False
    # Positionals only when optional (nargs ? or *): a required one has no default to speak of.
    return bool(action.option_strings) or action.nargs in ("?", "*")


def add_parser(subparsers: argparse._SubParsersAction, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """``subparsers.add_parser`` with the house conventions (also applied afterwards by :func:`finish_parser`)."""
    kwargs.setdefault("formatter_class", HelpFormatter)
    kwargs.setdefault("allow_abbrev", False)
    if "help" in kwargs and "description" not in kwargs:
        kwargs["description"] = kwargs["help"][:1].upper() + kwargs["help"][1:] + "."
    return subparsers.add_parser(name, **kwargs)


def subparsers_of(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The direct subcommands of ``parser`` (name -> parser), aliases left out."""
    out: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if sub not in out.values():
                    out[name] = sub
    return out


def finish_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Apply the conventions to ``parser`` and every subparser below it: no abbreviations, defaults shown."""
    parser.allow_abbrev = False
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if action.help is None and _meaningful_default(action):
            action.help = "(default: %(default)s)"  # argparse prints nothing for help-less options
    for sub in subparsers_of(parser).values():
        finish_parser(sub)
    return parser


def next_steps(run_dir: str | Path, tensorboard: bool | None = None, task: str = "classification") -> str:
    """The commands worth running after ``train`` wrote ``run_dir``: eval, report, viz, export, TensorBoard."""
    run = shlex.quote(str(run_dir))
    best = shlex.quote(str(Path(run_dir) / "checkpoint_best.pt"))
    if task == "part_segmentation":
        lines = [
            "next:",
            f"  pointnet-kit eval {run}                                   # instance / category mIoU on the validation split",
            f"  pointnet-kit report {run}                                 # curves, per-part IoU, report.html",
            f"  pointnet-kit viz predictions {run} --wrong-only           # the shapes it segments worst",
            f"  pointnet-kit predict {best} FILE --category NAME          # label your own shape's points",
            f"  pointnet-kit viz parts {best} FILE                        # predicted parts beside the truth",
        ]
    else:
        lines = [
            "next:",
            f"  pointnet-kit eval {run} --votes 12                        # accuracy on the validation split",
            f"  pointnet-kit eval {run} --split test                      # held-out test split, once you are done choosing",
            f"  pointnet-kit report {run}                                 # curves, confusion matrix, report.html",
            f"  pointnet-kit viz predictions {run} --wrong-only           # what it gets wrong",
            f"  pointnet-kit predict {best} FILE.off                       # classify your own shapes",
            f"  pointnet-kit export {best} --format onnx --out model.onnx  # deploy (also --format pt2)",
        ]
    if tensorboard is None:
        tensorboard = (Path(run_dir) / "tensorboard").is_dir()
    if tensorboard:
        lines.append(f"  tensorboard --logdir {shlex.quote(str(Path(run_dir) / 'tensorboard'))}")
    return "\n".join(_align(lines)) + "\n"


def _align(lines: list[str]) -> list[str]:
    """Line up the ``# comments`` of command lines."""
    parts = [line.split("  # ", 1) if "  # " in line else [line] for line in lines]
    width = max(len(p[0].rstrip()) for p in parts if len(p) == 2)
    return [f"{p[0].rstrip():<{width}}  # {p[1]}" if len(p) == 2 else p[0] for p in parts]


def tensorboard_missing(stream: TextIO | None = None) -> bool:
    """Warn once on ``stream`` (stderr) that TensorBoard logging is off because the package is missing.

    Returns True when tensorboard can be imported (nothing printed), False after warning.
    """
    import importlib.util

    if importlib.util.find_spec("tensorboard") is not None:
        return True
    print(
        "warning: runtime.tensorboard=true but tensorboard is not installed, so no TensorBoard logs are written "
        "(metrics.jsonl has every number); pip install 'pointnet-kit[tensorboard]', or set runtime.tensorboard=false",
        file=stream or sys.stderr,
    )
    return False
