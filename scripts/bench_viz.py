"""Speed of the viz layer: offscreen renderer start-up, ms per rendered tile, critical set and upper-bound shape.

    python scripts/bench_viz.py [--size 256] [--points 1024] [--resolution 32] [--repeats 20]

Prints one JSON object. Uses a random-weight PointNet (speed does not depend on training).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from pointnet_kit import create_model
from pointnet_kit.viz import Cloud, Renderer, critical_points, upper_bound_shape
from pointnet_kit.viz.figures import critical_panels, render_panels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    cloud = rng.normal(size=(args.points, 3)).astype(np.float32)
    cloud /= np.linalg.norm(cloud, axis=1, keepdims=True)

    start = time.perf_counter()
    renderer = Renderer(args.size, args.size)
    startup = time.perf_counter() - start
    renderer.render(Cloud(cloud))  # warm-up
    start = time.perf_counter()
    for _ in range(args.repeats):
        renderer.render(Cloud(cloud))
    per_tile = (time.perf_counter() - start) / args.repeats

    model = create_model("pointnet", num_classes=40, seed=0).eval()
    points = torch.from_numpy(cloud)
    start = time.perf_counter()
    critical = critical_points(model, points)["critical"]
    critical_s = time.perf_counter() - start
    start = time.perf_counter()
    upper = upper_bound_shape(model, points, resolution=args.resolution)
    upper_s = time.perf_counter() - start
    start = time.perf_counter()
    render_panels(critical_panels(cloud, critical.numpy(), upper.numpy()), renderer)
    figure_s = time.perf_counter() - start
    renderer.close()

    print(
        json.dumps(
            {
                "machine": platform.processor() or platform.machine(),
                "torch_threads": torch.get_num_threads(),
                "tile_px": args.size,
                "points": args.points,
                "renderer_startup_s": round(startup, 3),
                "ms_per_tile": round(per_tile * 1e3, 2),
                "critical_set_s": round(critical_s, 3),
                "upper_bound_grid": args.resolution**3,
                "upper_bound_points": len(upper),
                "upper_bound_s": round(upper_s, 3),
                "critical_figure_render_s": round(figure_s, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
