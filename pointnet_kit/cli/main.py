"""``pointnet-kit`` command line: one subcommand per capability, each in its own module.

This module is the one error boundary. Every failure leaves as one line on stderr and an exit code:

====  ==========================================================================================
code  meaning
====  ==========================================================================================
0     success
1     unexpected internal error (a bug): one line, and the full traceback written to a file
2     a mistake in the input: bad arguments, config, data file, dataset or checkpoint
3     the system refused: unreadable/unwritable path, read-only or full disk, out of memory
130   interrupted (Ctrl-C)
141   stdout was closed early (e.g. piped into ``head``); nothing is printed
====  ==========================================================================================

``--debug`` (anywhere on the command line, or ``POINTNET_KIT_DEBUG=1``) shows full tracebacks instead.
Torch, NumPy and friends are imported by the subcommands, never here, so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import typing
from typing import Sequence

from .. import __version__  # the package __init__ is lazy: no torch here
from ..allocator import retain_freed_memory
from ..errors import PointNetKitError
from .guide import HelpFormatter, finish_parser

# Each module defines ``register(subparsers)``, which adds its subcommand(s) with ``func=...``.
# They import torch/numpy/open3d inside their functions only, so --help and --version stay fast.
COMMAND_MODULES = [
    "pointnet_kit.cli.equivalence",
    "pointnet_kit.cli.data",
    "pointnet_kit.cli.engine",
    "pointnet_kit.cli.viz",
    "pointnet_kit.cli.config",
    "pointnet_kit.cli.completion",
]

EXIT_OK, EXIT_BUG, EXIT_USER, EXIT_SYSTEM, EXIT_INTERRUPT, EXIT_PIPE = 0, 1, 2, 3, 130, 141
MAX_MESSAGE = 400  # characters of one error line, "error: " included (long temp paths need room)

# Failures of torch.save and friends that only mean "the write did not reach the disk".
_WRITE_FAILURES = ("PytorchStreamWriter failed", "file write failed", "unexpected pos", "No space left on device")

_ERRNO_HINTS = {
    errno.ENOSPC: "no space left on the device; free some or choose another output path",
    errno.EDQUOT: "disk quota exceeded; free some space or choose another output path",
    errno.EROFS: "read-only file system; choose another output path",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "a parent of this path is not a folder",
    errno.EISDIR: "is a folder, not a file",
}


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` on one line (newlines and runs of spaces collapsed), clipped to ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_os_error(exc: OSError) -> str:
    """``<path>: <what went wrong>`` for an OSError, naming both paths of a failed rename."""
    reason = _ERRNO_HINTS.get(exc.errno or -1) or exc.strerror or type(exc).__name__
    where = exc.filename if exc.filename is not None else None
    if where is not None and exc.filename2 is not None:
        where = f"{exc.filename} -> {exc.filename2}"
    if where is None:
        return f"{reason} ({exc})" if str(exc) and exc.strerror is None else reason
    return f"{where}: {reason}"


def _error(message: str) -> None:
    print(one_line(f"error: {message}"), file=sys.stderr)


def _write_traceback() -> str | None:
    """Write the current exception's traceback to a private temp file; its path, or None if that fails."""
    import tempfile
    import time
    import traceback

    try:
        fd, path = tempfile.mkstemp(prefix=f"pointnet-kit-crash-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(f"pointnet-kit {__version__}, python {sys.version.split()[0]}\nargv: {sys.argv!r}\n\n")
            traceback.print_exc(file=f)
        return path
    except Exception:  # nowhere to write: the caller prints the traceback instead
        return None


def _quiet_libraries(debug: bool) -> None:
    """Keep library chatter out of our one-line format: warnings become one ``warning:`` line each, and an
    invalid ``XDG_RUNTIME_DIR`` (which makes Open3D/Qt print a notice on every render) is dropped."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg is not None:
        try:
            st = os.stat(xdg)
            valid = st.st_uid == os.getuid() and (st.st_mode & 0o777) == 0o700
        except OSError:
            valid = False
        if not valid:
            del os.environ["XDG_RUNTIME_DIR"]
    if debug or os.environ.get("PYTHONWARNINGS"):
        return
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        print(one_line(f"warning: {category.__name__}: {message}", 200), file=sys.stderr)

    warnings.showwarning = show


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line that points at ``--help`` (subcommand parsers inherit this class)."""

    def error(self, message: str) -> typing.NoReturn:
        print(one_line(f"error: {self.prog}: {message} (see '{self.prog} --help')"), file=sys.stderr)
        sys.exit(EXIT_USER)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="pointnet-kit",
        description="PointNet point cloud toolkit: train, evaluate, visualize, and see why 1x1 conv == FC.",
        epilog="Exit codes: 0 ok, 1 internal error (traceback saved to a file), 2 bad input (arguments, config, "
        "data, checkpoint), 3 system refused (permissions, read-only or full disk, out of memory), 130 interrupted.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"pointnet-kit {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return finish_parser(parser)  # every subparser: no prefix abbreviations, defaults shown


def main(argv: Sequence[str] | None = None) -> int:
    # Before torch loads OpenMP: idle threads sleep instead of spinning, so on a shared or busy CPU two
    # threads stay faster than one (measured: a 2-thread training step 6.6-8.0 s -> 2.1-2.6 s at load 6).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    retain_freed_memory()  # big CPU tensors reuse pages instead of faulting them in each step
    argv = list(sys.argv[1:] if argv is None else argv)
    # --debug is accepted after the subcommand too (where argparse would not look for it).
    debug = "--debug" in argv or os.environ.get("POINTNET_KIT_DEBUG", "") not in ("", "0")
    argv = [a for a in argv if a != "--debug"]
    _quiet_libraries(debug)
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse prints usage + one line, exit 2
    try:
        status = args.func(args)
        sys.stdout.flush()
    except PointNetKitError as exc:
        if debug:
            raise
        _error(str(exc))
        return EXIT_USER
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPT
    except BrokenPipeError:
        # The reader went away (`| head`): say nothing, and keep Python from complaining at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:
            pass
        return EXIT_PIPE
    except OSError as exc:
        if debug:
            raise
        _error(describe_os_error(exc))
        return EXIT_SYSTEM
    except MemoryError:
        if debug:
            raise
        _error("out of memory; try fewer points, a smaller batch or a smaller input")
        return EXIT_SYSTEM
    except RuntimeError as exc:
        if debug:
            raise
        if any(s in str(exc) for s in _WRITE_FAILURES):
            _error(f"a write failed ({one_line(str(exc), 120)}); is the disk full or the output path unwritable?")
            return EXIT_SYSTEM
        return _unexpected(exc)
    except Exception as exc:  # noqa: BLE001 - the boundary: anything else is a bug, reported in one line
        if debug:
            raise
        return _unexpected(exc)
    return int(status or 0)


def _unexpected(exc: BaseException) -> int:
    path = _write_traceback()
    where = f"full traceback in {path}" if path else "no temp dir to write the traceback to; rerun with --debug"
    summary = one_line(f"{type(exc).__name__}: {exc}", 160)
    print(f"error: unexpected {summary} (a bug in pointnet-kit; {where}; --debug shows it)", file=sys.stderr)
    return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
