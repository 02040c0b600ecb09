"""Package a finished run as a shipped pretrained model (half-precision weights + provenance).

    python scripts/make_pretrained.py RUN_DIR --name modelnet40 --recipe pointnet_modelnet40_fast \
        --commit <commit the run was trained with>

Writes ``pointnet_kit/pretrained/<file>`` (see ``pointnet_kit.models.pretrained.PRETRAINED``) from the
run's ``checkpoint_best.pt`` (selected on the validation split) and prints what it wrote as JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pointnet_kit.engine.checkpoint import checkpoint_config, load_checkpoint, load_run  # noqa: E402
from pointnet_kit.models.pretrained import PRETRAINED  # noqa: E402
from pointnet_kit.utils import atomic_write_bytes  # noqa: E402

MAX_BYTES = 8 << 20  # what the package may carry per model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--name", default="modelnet40", choices=sorted(PRETRAINED))
    parser.add_argument("--recipe", required=True, help="config name the run was trained with")
    parser.add_argument("--commit", required=True, help="commit of the code that trained it")
    args = parser.parse_args()

    ckpt = load_checkpoint(args.run_dir / "checkpoint_best.pt")
    summary = json.loads((args.run_dir / "summary.json").read_text()) if (args.run_dir / "summary.json").is_file() else {}
    history = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    state = {k: v.half() if torch.is_floating_point(v) else v for k, v in ckpt["model_state"].items()}
    _model, task, spec, _ = load_run(ckpt)  # the spec and config, also for runs from before both were stored
    config = checkpoint_config(ckpt).to_dict()
    payload = {
        "format_version": ckpt.get("format_version", 1),
        "model_name": ckpt["model_name"],
        "model_kwargs": {**config["model"]["kwargs"], **ckpt["model_kwargs"]},
        "model_state": state,
        "task": task.name,
        "data_spec": spec.to_dict(),
        "class_names": list(spec.class_names),
        "config": config,
        "epoch": ckpt["epoch"],
        "validation": {k: v for k, v in ckpt["metrics"].items() if k.startswith("val_")},
        "curve": [{k: m[k] for k in ("epoch", "val_oa", "val_macc", "train_seconds") if k in m} for m in history],
        "provenance": {
            "data": config["data"]["root"],
            "data_note": "ModelNet40 training split (9843 shapes); checkpoint selected on a stratified "
            f"{config['data']['val_fraction']:.0%} validation split carved from it (seed {config['data']['split_seed']}); "
            "no test data seen",
            "recipe": args.recipe,
            "seed": config["runtime"]["seed"],
            "commit": args.commit,
            "wall_time_s": summary.get("wall_time_s"),
            "device": summary.get("device_name") or summary.get("device"),
            "packaged": time.strftime("%Y-%m-%d"),
            "weights": "float16 (converted to float32 on load)",
        },
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    if len(data) > MAX_BYTES:
        raise SystemExit(f"{len(data)} bytes is more than the {MAX_BYTES} the package may carry")
    out = Path(__file__).resolve().parents[1] / "pointnet_kit" / "pretrained" / PRETRAINED[args.name]
    atomic_write_bytes(out, data)
    print(json.dumps({"wrote": str(out), "bytes": len(data), "epoch": payload["epoch"], **payload["validation"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
