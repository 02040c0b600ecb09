"""``pointnet-kit config list | show``: the shipped configs, and any config resolved with a comment per key."""

from __future__ import annotations

import argparse
import ast
import json
import re
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .guide import add_parser


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_parser(
        subparsers,
        "config",
        help="list the shipped configs, or show a resolved config with a comment per key",
        description="The configs shipped with the package (usable as `train --config NAME`), and the resolved "
        "form of any config: what `train` would run, every key with a short comment.",
    )
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    q = add_parser(sub, "list", help="the shipped configs: name and one-line description")
    q.add_argument("--json", action="store_true", help="print JSON to stdout instead of a table")
    q.set_defaults(func=run_list)
    q = add_parser(
        sub,
        "show",
        help="the resolved config as YAML, with a comment per key",
        description="Print the config `train` would run as YAML (loadable with --config), each key with a short "
        "comment. NAME is a shipped config or a YAML file (default: the built-in default job); "
        "key=value overrides apply on top, as for train.",
    )
    q.add_argument("args", nargs="*", metavar="[NAME] KEY=VALUE", help="config name or file, then overrides")
    q.set_defaults(func=run_show)


def description(path: Path) -> str:
    """One line from the first comment block of a YAML file: its first sentence."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    return _first_sentence(" ".join(part for part in lines if part))


def run_list(args: argparse.Namespace) -> int:
    from ..engine.config import CONFIG_DIR, list_configs

    rows = [(name, description(CONFIG_DIR / f"{name}.yaml")) for name in list_configs()]
    if args.json:
        print(json.dumps([{"name": n, "description": d, "path": str(CONFIG_DIR / f"{n}.yaml")} for n, d in rows], indent=2))
        return 0
    width = max(len(name) for name, _ in rows)
    for name, text in rows:
        print(f"{name:<{width}}  {text}")
    print(f"\n{len(rows)} configs in {CONFIG_DIR}; use one with `pointnet-kit train --config NAME [key=value ...]`")
    return 0


def field_docs() -> dict[str, str]:
    """``"section.key"`` (and ``"section"``) -> the first sentence of that field's docstring in engine/config.py."""
    from ..engine import config as config_module

    tree = ast.parse(Path(config_module.__file__).read_text(encoding="utf-8"))
    classes: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = classes.setdefault(node.name, {})
        for field, doc in zip(node.body, node.body[1:]):
            if (
                isinstance(field, ast.AnnAssign)
                and isinstance(field.target, ast.Name)
                and isinstance(doc, ast.Expr)
                and isinstance(doc.value, ast.Constant)
                and isinstance(doc.value.value, str)
            ):
                docs[field.target.id] = _short(doc.value.value)
    out: dict[str, str] = {}
    import dataclasses
    import typing

    for section, tp in typing.get_type_hints(config_module.Config).items():
        out[section] = classes.get("Config", {}).get(section, "")
        if dataclasses.is_dataclass(tp):
            for key, text in classes.get(tp.__name__, {}).items():
                out[f"{section}.{key}"] = text
    return out


def _short(doc: str) -> str:
    return _first_sentence(" ".join(doc.replace("``", "`").split()))


def _first_sentence(text: str) -> str:
    """Up to the first full stop followed by a capital letter (so "e.g. the" does not end it)."""
    match = re.match(r"(.+?[.!?])(?=\s+[A-Z]|$)", text)
    return match.group(1) if match else text


def _inline(value: Any) -> str:
    """A value as one line of YAML flow style (``[a, b]``, ``{name: x}``, ``null``, quoted strings)."""
    import yaml

    text = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=10**9).strip()
    return text[1:-1]  # drop the list brackets around the value


def render_config(config: Any, header: list[str] | None = None) -> str:
    """The config as YAML, ``key: value  # comment`` per line; loads back to ``config.to_dict()``."""
    docs = field_docs()
    rows: list[tuple[str, str]] = []
    for section, values in config.to_dict().items():
        rows.append((f"{section}:", docs.get(section, "")))
        for key, value in values.items():
            rows.append((f"  {key}: {_inline(value)}", docs.get(f"{section}.{key}", "")))
    width = min(max(len(text) for text, _ in rows), 44)
    lines = [f"# {line}" for line in header or []]
    for text, doc in rows:
        lines.append(f"{text:<{width}}  # {doc}" if doc else text)
    return "\n".join(lines) + "\n"


def run_show(args: argparse.Namespace) -> int:
    from ..engine.config import load_config, resolve_config

    name, overrides = None, list(args.args)
    if overrides and "=" not in overrides[0]:
        name = overrides.pop(0)
    stray = [o for o in overrides if "=" not in o]
    if stray:
        raise ConfigError(f"config show takes one NAME, then key=value overrides; got {stray[0]!r} after them")
    path = resolve_config(name) if name else None
    config = load_config(path, overrides)
    header = [f"{name or 'default'}: {description(path) if path else 'the built-in defaults'}"]
    if path:
        header.append(f"from {path}")
    if overrides:
        header.append("overrides: " + " ".join(overrides))
    print(render_config(config, header), end="")
    return 0
