"""The equivalence "1x1 convolution == fully connected layer", checked numerically.

Each ``claim_*`` function builds two or three formulations of one computation, with weights
converted exactly by the :mod:`pointnet_kit.layers` converters, runs each forward and backward on
the same input and the same upstream gradient, and returns a :class:`ClaimResult`.

Differences are ``max|A - X| / max|A|`` over the other formulations X, for the outputs, the input
gradients and the weight gradients: relative to the largest magnitude of the reference A. Two
formulations sum the same products in different orders, so they differ by float rounding, which
grows like ``sqrt(n)`` for sums of ``n`` terms (in float32, about 1e-6 relative at n = 784). The
tolerance is therefore ``1e-6 * sqrt(n)`` in float32 and ``1e-12 * sqrt(n)`` in float64, ``n``
being the longest sum behind any compared value (stated per claim). TF32 is off throughout
(:func:`no_tf32`).
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import torch
from torch import nn

from .layers import SharedMLP, conv1d_to_linear, conv2d_to_linear, linear_to_conv1d, linear_to_conv2d
from .layers import grouping
from .layers.edge_conv import EdgeConv, edge_features
from .models import create_model

TOLERANCES = {torch.float32: 1e-6, torch.float64: 1e-12}
DIFF_MEASURE = "max|A - X| / max|A|"
DeviceLike = str | torch.device


@dataclass
class ClaimResult:
    """One claim checked in one dtype (or, for a count row, just counted)."""

    claim: str
    title: str
    formulations: list[str]  # A (the reference), B, and C where there are three
    dtype: str
    output_diff: float | None  # DIFF_MEASURE; None for a count row
    input_grad_diff: float | None
    weight_grad_diff: float | None
    params: list[int]  # per formulation
    ms_per_call: list[float]  # forward, median of repeats, per formulation
    tolerance: float | None  # TOLERANCES[dtype] * sqrt(terms)
    passed: bool
    terms: int | None = None  # the longest sum behind a compared value
    flops: list[int] | None = None  # count rows only
    note: str = ""

    @property
    def is_count(self) -> bool:
        return self.tolerance is None


@dataclass
class _Formulation:
    name: str
    fn: Callable[[torch.Tensor], torch.Tensor]  # input in A's layout -> output in A's layout
    weights: nn.Module  # its parameters' grads, flattened and concatenated, line up across formulations


@contextmanager
def no_tf32() -> Iterator[None]:
    """Run float32 CUDA matmuls and convolutions in full IEEE precision (TF32 off); restore after."""
    if hasattr(torch.backends.cudnn, "conv"):  # torch >= 2.9: mixing this with allow_tf32 is an error
        backends = [torch.backends.cuda.matmul, torch.backends.cudnn.conv]
        saved = [backend.fp32_precision for backend in backends]
        try:
            for backend in backends:
                backend.fp32_precision = "ieee"
            yield
        finally:
            for backend, value in zip(backends, saved, strict=True):
                backend.fp32_precision = value
    else:
        saved_tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        try:
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved_tf32


def _claim(fn: Callable[..., ClaimResult]) -> Callable[..., ClaimResult]:
    """Run a claim, comparison and timing, with TF32 off."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> ClaimResult:
        with no_tf32():
            return fn(*args, **kwargs)

    return wrapper


def _seeded(seed: int, build: Callable[[], nn.Module], dtype: torch.dtype, device: DeviceLike) -> nn.Module:
    """``build()`` with the global RNG seeded and restored afterwards, moved to ``device``/``dtype``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = build()
    return module.to(device=device, dtype=dtype)


def _randn(shape: Sequence[int], seed: int, dtype: torch.dtype, device: DeviceLike) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(device=device, dtype=dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _diff(reference: torch.Tensor, others: Sequence[torch.Tensor]) -> float:
    reference = reference.detach().double()
    scale = reference.abs().max().item() or 1.0
    return max((other.detach().double() - reference).abs().max().item() for other in others) / scale


def _forward_backward(
    form: _Formulation, x: torch.Tensor, grad_out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Output, input gradient and flattened weight gradients of one formulation."""
    params = list(form.weights.parameters())
    for p in params:
        p.grad = None
    x = x.detach().clone().requires_grad_(True)
    out = form.fn(x)
    out.backward(grad_out)
    weight_grad = torch.cat([p.grad.flatten() for p in params])
    return out.detach(), x.grad.detach(), weight_grad


@torch.no_grad()
def _time_ms(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int = 5, budget_s: float = 0.05
) -> float:
    """Median forward time in milliseconds (CUDA synchronised); fewer repeats when one call is slow."""
    sync = (lambda: torch.cuda.synchronize(x.device)) if x.device.type == "cuda" else (lambda: None)

    def once() -> float:
        start = time.perf_counter()
        fn(x)
        sync()
        return time.perf_counter() - start

    warm_up = once()
    times = [once() for _ in range(max(1, min(repeats, int(budget_s / max(warm_up, 1e-9)))))]
    return 1000.0 * statistics.median(times)


def _compare(
    claim: str,
    title: str,
    forms: Sequence[_Formulation],
    *,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    terms: int,
    dtype: torch.dtype,
    device: DeviceLike,
    seed: int,
    extra_output_diff: Callable[[], float] | None = None,
) -> ClaimResult:
    """Run every formulation forward and backward on the same random input and upstream gradient,
    diff against the first, then time each."""
    x = _randn(input_shape, seed + 1, dtype, device)
    grad_out = _randn(output_shape, seed + 2, dtype, device)
    runs = [_forward_backward(form, x, grad_out) for form in forms]
    (out_a, in_grad_a, weight_grad_a), rest = runs[0], runs[1:]
    output_diff = _diff(out_a, [run[0] for run in rest])
    if extra_output_diff is not None:  # e.g. BatchNorm running statistics, before timing moves them
        output_diff = max(output_diff, extra_output_diff())
    input_grad_diff = _diff(in_grad_a, [run[1] for run in rest])
    weight_grad_diff = _diff(weight_grad_a, [run[2] for run in rest])
    tolerance = TOLERANCES[x.dtype] * math.sqrt(terms)
    diffs = (output_diff, input_grad_diff, weight_grad_diff)
    return ClaimResult(
        claim=claim,
        title=title,
        formulations=[form.name for form in forms],
        dtype=_dtype_name(x.dtype),
        output_diff=output_diff,
        input_grad_diff=input_grad_diff,
        weight_grad_diff=weight_grad_diff,
        params=[sum(p.numel() for p in form.weights.parameters()) for form in forms],
        ms_per_call=[_time_ms(form.fn, x) for form in forms],
        tolerance=tolerance,
        passed=all(d <= tolerance for d in diffs),  # False for NaN too
        terms=terms,
    )


@_claim
def claim_conv1d_linear(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 1: ``Conv1d(k=1)`` on ``(B, C, N)`` == the same Linear at each point (loop, and batched)."""
    batch, c_in, c_out, num_points = 8, 64, 128, 32
    conv = _seeded(seed, lambda: nn.Conv1d(c_in, c_out, kernel_size=1), dtype, device)
    linear = conv1d_to_linear(conv)

    def loop(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([linear(x[:, :, i]) for i in range(x.shape[2])], dim=2)

    forms = [
        _Formulation(f"Conv1d({c_in}->{c_out}, k=1) on (B, C, N)", conv, conv),
        _Formulation("the same Linear, Python loop over points", loop, linear),
        _Formulation(
            "the same Linear, once on (B, N, C)",
            lambda x: linear(x.transpose(1, 2)).transpose(1, 2),
            linear,
        ),
    ]
    terms = max(c_in, c_out, batch * num_points)  # weight gradients sum over every point
    return _compare(
        "1",
        "Conv1d(k=1) == per-point Linear",
        forms,
        input_shape=(batch, c_in, num_points),
        output_shape=(batch, c_out, num_points),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_shared_mlp_backends(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 1b: ``SharedMLP`` conv backend == its ``converted("linear")`` twin, BatchNorm in train mode.

    The output difference also covers the BatchNorm running statistics after the forward pass.
    """
    batch, num_points, channels = 4, 256, [3, 64, 128]
    conv_mlp = _seeded(seed, lambda: SharedMLP(channels), dtype, device).train()
    linear_mlp = conv_mlp.converted("linear")

    def buffer_diff() -> float:
        return _diff(
            torch.cat([b.flatten().double() for b in conv_mlp.buffers()]),
            [torch.cat([b.flatten().double() for b in linear_mlp.buffers()])],
        )

    forms = [
        _Formulation("SharedMLP 3-64-128, Conv1d + BN (train) on (B, C, N)", conv_mlp, conv_mlp),
        _Formulation(
            "SharedMLP.converted('linear') on (B, N, C)",
            lambda x: linear_mlp(x.transpose(1, 2)).transpose(1, 2),
            linear_mlp,
        ),
    ]
    terms = max(*channels, batch * num_points)  # BatchNorm statistics and weight gradients
    return _compare(
        "1b",
        "SharedMLP conv == linear (BN train)",
        forms,
        input_shape=(batch, channels[0], num_points),
        output_shape=(batch, channels[-1], num_points),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
        extra_output_diff=buffer_diff,
    )


@_claim
def claim_shared_mlp_max_pool(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 1c: the pooled layer the models run, ``SharedMLP.max_pool`` (BatchNorm in train mode),
    == the conv backend then max over points == the linear backend then max over points.

    ``max_pool`` never builds the last layer's output: BN statistics from the input's Gram matrix,
    the argmax from a chunked BN-folded product, the value recomputed at the winners.
    """
    batch, num_points, channels = 4, 256, [64, 128, 1024]  # the last layer of every PointNet max pool
    conv_mlp = _seeded(seed, lambda: SharedMLP(channels), dtype, device).train()
    linear_mlp = conv_mlp.converted("linear")
    fused_mlp = conv_mlp.converted("conv")
    forms = [
        _Formulation("SharedMLP 64-128-1024 Conv1d + BN (train), then max over N", lambda x: conv_mlp(x).amax(dim=2), conv_mlp),
        _Formulation(
            "SharedMLP.converted('linear') on (B, N, C), then max over N",
            lambda x: linear_mlp(x.transpose(1, 2)).amax(dim=1),
            linear_mlp,
        ),
        _Formulation("SharedMLP.max_pool (what the models run)", fused_mlp.max_pool, fused_mlp),
    ]
    terms = max(*channels, batch * num_points)  # BatchNorm statistics and weight gradients
    return _compare(
        "1c",
        "SharedMLP + max pool: conv == linear == max_pool",
        forms,
        input_shape=(batch, channels[0], num_points),
        output_shape=(batch, channels[-1]),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_conv2d_linear(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 2: ``Conv2d(1x1)`` on an image == a Linear over the channels at every pixel."""
    batch, c_in, c_out, size = 2, 32, 48, 16
    conv = _seeded(seed, lambda: nn.Conv2d(c_in, c_out, kernel_size=1), dtype, device)
    linear = conv2d_to_linear(conv)
    forms = [
        _Formulation(f"Conv2d({c_in}->{c_out}, 1x1) on (B, C, H, W)", conv, conv),
        _Formulation(
            "the same Linear on (B, H, W, C)",
            lambda x: linear(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2),
            linear,
        ),
    ]
    terms = max(c_in, c_out, batch * size * size)
    return _compare(
        "2",
        "Conv2d(1x1) == per-pixel Linear",
        forms,
        input_shape=(batch, c_in, size, size),
        output_shape=(batch, c_out, size, size),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_fc_image_conv(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 3: FC 784 -> 784 on a flattened 28x28 image == 784 filters of 28x28 == 784x1x1 + 1x1 conv."""
    batch, side = 8, 28
    features = side * side
    fc = _seeded(seed, lambda: nn.Linear(features, features), dtype, device)
    full_kernel = linear_to_conv2d(fc, in_channels=1, kernel_size=side)
    pointwise = linear_to_conv2d(fc)
    forms = [
        _Formulation(
            f"FC {features}->{features} on the flattened image",
            lambda x: fc(x.flatten(1)),
            fc,
        ),
        _Formulation(
            f"Conv2d(1->{features}, one {side}x{side} kernel per output)",
            lambda x: full_kernel(x).flatten(1),
            full_kernel,
        ),
        _Formulation(
            f"image as {features}x1x1, Conv2d({features}->{features}, 1x1)",
            lambda x: pointwise(x.reshape(x.shape[0], features, 1, 1)).flatten(1),
            pointwise,
        ),
    ]
    return _compare(
        "3",
        "FC 784->784 == 28x28 conv == 1x1 conv",
        forms,
        input_shape=(batch, 1, side, side),
        output_shape=(batch, features),
        terms=features,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_class_maps(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 4a: a 1x1 conv with one map per class, averaged over points == an FC head on the mean feature."""
    batch, channels, num_classes, num_points = 4, 256, 10, 128
    head = _seeded(seed, lambda: nn.Linear(channels, num_classes), dtype, device)
    class_maps = linear_to_conv1d(head)
    forms = [
        _Formulation(
            f"Conv1d({channels}->{num_classes}, k=1) class maps, mean over points",
            lambda x: class_maps(x).mean(dim=2),
            class_maps,
        ),
        _Formulation(
            f"FC {channels}->{num_classes} on the mean feature",
            lambda x: head(x.mean(dim=2)),
            head,
        ),
    ]
    terms = max(channels, batch * num_points)
    return _compare(
        "4a",
        "1x1 class maps + mean == FC head",
        forms,
        input_shape=(batch, channels, num_points),
        output_shape=(batch, num_classes),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_permutation_invariance(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 4b: PointNet's max-pooled global feature, hence its logits, ignore the order of points (eval)."""
    batch, num_points = 2, 256
    model = _seeded(seed, lambda: create_model("pointnet", num_classes=10), dtype, device).eval()
    generator = torch.Generator().manual_seed(seed + 3)
    perm = torch.stack([torch.randperm(num_points, generator=generator) for _ in range(batch)])
    index = perm.to(device).unsqueeze(-1).expand(-1, -1, 3)  # (B, N, 3)
    forms = [
        _Formulation("pointnet (eval) on the points", lambda x: model(x)["logits"], model),
        _Formulation(
            "the same model on the points permuted",
            lambda x: model(torch.gather(x, 1, index))["logits"],
            model,
        ),
    ]
    terms = max(1024, batch * num_points)  # the 1024-d global feature; weight gradients over points
    return _compare(
        "4b",
        "PointNet logits ignore point order",
        forms,
        input_shape=(batch, num_points, 3),
        output_shape=(batch, 10),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_set_abstraction(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 6: PointNet++'s set-abstraction MLP, ``Conv2d(1x1)`` over grouped ``(B, C, S, K)`` then max
    over ``K``, == the same Linear layers on each (centroid, neighbour) pair ``[p_j - c_i, f_j]``; and
    with each group's neighbours shuffled the max-pooled output is the same.

    Input: ``(B, 3 + D, N)`` points (xyz then features); centroids and balls are fixed indices.
    """
    batch, num_points, features, groups, k, widths = 2, 64, 13, 8, 16, [32, 64]
    c_in = 3 + features
    gen = torch.Generator().manual_seed(seed + 3)
    centre_index = torch.stack([torch.randperm(num_points, generator=gen)[:groups] for _ in range(batch)])
    index = torch.randint(num_points, (batch, groups, k), generator=gen)
    index[..., 0] = centre_index  # each ball holds its centroid, as a ball query's does
    shuffle = torch.argsort(torch.rand(batch, groups, k, generator=gen), dim=-1)
    centre_index, index = centre_index.to(device), index.to(device)
    shuffled = index.gather(2, shuffle.to(device))

    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(c_in, widths[0], 1), nn.ReLU(), nn.Conv2d(widths[0], widths[1], 1))

    mlp = _seeded(seed, build, dtype, device)
    linears = nn.Sequential(conv2d_to_linear(mlp[0]), nn.ReLU(), conv2d_to_linear(mlp[2]))

    def grouped(x: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:  # (B, C, N) -> (B, C, S, K)
        centres = grouping.gather_points(x[:, :3], centre_index).unsqueeze(-1)  # (B, 3, S, 1)
        g = grouping.group(x, neighbours)
        return torch.cat([g[:, :3] - centres, g[:, 3:]], dim=1)

    def per_pair(x: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(batch, device=x.device)
        pairs = []
        for s in range(groups):
            centre = x[rows, :3, centre_index[:, s]]  # (B, 3)
            for j in range(k):
                p = x[rows, :, index[:, s, j]]  # (B, C): the neighbour
                pairs.append(linears(torch.cat([p[:, :3] - centre, p[:, 3:]], dim=1)))
        return torch.stack(pairs, dim=2).view(batch, widths[1], groups, k).amax(dim=3)

    forms = [
        _Formulation(
            f"Conv2d 1x1 MLP {c_in}-{widths[0]}-{widths[1]} on grouped (B, C, S, K), max over K",
            lambda x: mlp(grouped(x, index)).amax(dim=3),
            mlp,
        ),
        _Formulation("the same Linears on each (centroid, neighbour) pair, max", per_pair, linears),
        _Formulation(
            "the Conv2d MLP on each group's neighbours shuffled, max over K",
            lambda x: mlp(grouped(x, shuffled)).amax(dim=3),
            mlp,
        ),
    ]
    terms = max(c_in, *widths, batch * groups * k)  # weight gradients sum over every pair
    return _compare(
        "6",
        "set abstraction == per-pair Linear, max ignores order",
        forms,
        input_shape=(batch, c_in, num_points),
        output_shape=(batch, widths[1], groups),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


@_claim
def claim_edge_conv(
    dtype: torch.dtype = torch.float32, device: DeviceLike = "cpu", seed: int = 0
) -> ClaimResult:
    """Claim 7: DGCNN's EdgeConv, ``Conv2d(1x1)`` on edge features ``[x_i, x_j - x_i]`` ``(B, 2C, N, k)``
    then max over ``k``, == a Linear on each edge feature == the factored form the model runs,
    ``(W_c - W_d) x_i + W_d x_j`` (two per-point products, the second gathered over the edges)."""
    batch, channels, out_channels, num_points, k = 2, 32, 64, 48, 8
    layer = _seeded(seed, lambda: EdgeConv(channels, out_channels, k, norm=None, activation=None), dtype, device)
    linear = conv2d_to_linear(layer.conv)
    index = layer.neighbours(_randn((batch, channels, num_points), seed + 1, dtype, device))  # (B, N, k)
    forms = [
        _Formulation(
            f"Conv2d({2 * channels}->{out_channels}, 1x1) on [x_i, x_j - x_i] (B, 2C, N, k), max over k",
            lambda x: layer.conv(edge_features(x, index)).amax(dim=3),
            layer.conv,
        ),
        _Formulation(
            "the same Linear on each edge feature (B, N, k, 2C), max",
            lambda x: linear(edge_features(x, index).permute(0, 2, 3, 1)).amax(dim=2).transpose(1, 2),
            linear,
        ),
        _Formulation(
            "factored: (W_c - W_d) x_i + W_d x_j, gathered over edges, max",
            lambda x: layer.edge_response(x, index).amax(dim=3),
            layer.conv,
        ),
    ]
    terms = max(2 * channels, out_channels, batch * num_points * k)  # weight gradients sum over every edge
    return _compare(
        "7",
        "EdgeConv == per-edge Linear",
        forms,
        input_shape=(batch, channels, num_points),
        output_shape=(batch, out_channels, num_points),
        terms=terms,
        dtype=dtype,
        device=device,
        seed=seed,
    )


def _conv_flops(module: nn.Module, x: torch.Tensor) -> int:
    """FLOPs (2 x multiply-adds, biases aside) of every Conv1d/Conv2d/Linear in one forward of ``x``."""
    total = 0

    def hook(layer: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(layer, nn.Linear):
            total += 2 * out.numel() * layer.in_features
        else:
            total += 2 * out.numel() * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)

    handles = [
        m.register_forward_hook(hook)
        for m in module.modules()
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))
    ]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def claim_bottleneck_counts(device: DeviceLike = "cpu", seed: int = 0, size: int = 56) -> ClaimResult:
    """Claim 5, a count row: params and FLOPs, plain 3x3 conv 64 -> 64 vs 1x1 bottleneck 64 -> 32 -> 64.

    Convolutions without biases, FLOPs for one ``size x size`` feature map.
    """

    def build_plain() -> nn.Module:
        return nn.Conv2d(64, 64, 3, padding=1, bias=False)

    def build_bottleneck() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(64, 32, 1, bias=False),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1, bias=False),
            nn.ReLU(),
            nn.Conv2d(32, 64, 1, bias=False),
        )

    modules = [_seeded(seed, build, torch.float32, device) for build in (build_plain, build_bottleneck)]
    x = _randn((1, 64, size, size), seed + 1, torch.float32, device)
    params = [sum(p.numel() for p in m.parameters()) for m in modules]
    flops = [_conv_flops(m, x) for m in modules]
    ms = [_time_ms(m, x) for m in modules]
    note = (
        f"params {params[0]:,} -> {params[1]:,} ({params[0] / params[1]:.2f}x fewer), "
        f"FLOPs at {size}x{size} {flops[0] / 1e6:.1f}M -> {flops[1] / 1e6:.1f}M "
        f"({flops[0] / flops[1]:.2f}x fewer)"
    )
    return ClaimResult(
        claim="5",
        title="1x1 bottleneck vs plain 3x3 (counts)",
        formulations=["Conv2d(64->64, 3x3)", "1x1 64->32, 3x3 32->32, 1x1 32->64"],
        dtype=_dtype_name(torch.float32),
        output_diff=None,
        input_grad_diff=None,
        weight_grad_diff=None,
        params=params,
        ms_per_call=ms,
        tolerance=None,
        passed=True,
        flops=flops,
        note=note,
    )


CLAIMS: list[Callable[..., ClaimResult]] = [
    claim_conv1d_linear,
    claim_shared_mlp_backends,
    claim_shared_mlp_max_pool,
    claim_conv2d_linear,
    claim_fc_image_conv,
    claim_class_maps,
    claim_permutation_invariance,
    claim_set_abstraction,
    claim_edge_conv,
]


def run_all(
    device: DeviceLike = "cpu",
    dtypes: Sequence[torch.dtype] = (torch.float32, torch.float64),
    seed: int = 0,
) -> list[ClaimResult]:
    """Every claim in every dtype, then the count row (claim 5)."""
    results = [claim(dtype=dtype, device=device, seed=seed) for claim in CLAIMS for dtype in dtypes]
    results.append(claim_bottleneck_counts(device=device, seed=seed))
    return results


def _sci(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def format_table(results: Sequence[ClaimResult]) -> str:
    """An aligned text table, one row per claim and dtype, then the formulations and a verdict."""
    header = "claim,,dtype,out diff,in-grad,w-grad,n,tol,params A/B/C,ms/call A/B/C,ok".split(",")
    rows = [
        [
            r.claim,
            r.title,
            "count" if r.is_count else r.dtype,
            _sci(r.output_diff),
            _sci(r.input_grad_diff),
            _sci(r.weight_grad_diff),
            "-" if r.terms is None else str(r.terms),
            _sci(r.tolerance),
            " / ".join(f"{p:,}" for p in r.params),
            " / ".join(f"{ms:.3g}" for ms in r.ms_per_call),
            "-" if r.is_count else ("yes" if r.passed else "FAIL"),
        ]
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    numeric = {3, 4, 5, 6, 7}

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [line(header), line(["-" * w for w in widths])] + [line(row) for row in rows]
    lines += [
        "",
        f"diff = {DIFF_MEASURE} over the other formulations X, for outputs, input and weight gradients.",
        "tol = 1e-6 (float32) or 1e-12 (float64) x sqrt(n), n = the longest sum behind a compared value:",
        "rounding in a sum of n terms grows like sqrt(n). TF32 off; ms/call = median forward time.",
        "",
    ]
    seen: set[str] = set()
    for r in results:
        if r.claim in seen:
            continue
        seen.add(r.claim)
        names = "  |  ".join(f"{label}: {name}" for label, name in zip("ABC", r.formulations, strict=False))
        lines.append(f"{r.claim:<3} {names}")
        if r.note:
            lines.append(f"{'':<3} {r.note}")
    failed = [f"{r.claim} ({r.dtype})" for r in results if not r.passed]
    checked = sorted({r.dtype for r in results if not r.is_count})
    claims = len({r.claim for r in results if not r.is_count})
    lines.append("")
    if failed:
        lines.append(f"FAILED: {', '.join(failed)}")
    else:
        lines.append(f"All {claims} equivalence claims hold in {' and '.join(checked)}.")
    return "\n".join(lines)


def results_to_dict(results: Sequence[ClaimResult], device: str, seed: int) -> dict:
    """A JSON-ready summary: settings, the measure and tolerance rule, every result, and the verdict."""
    return {
        "device": device,
        "seed": seed,
        "torch": torch.__version__,
        "diff_measure": DIFF_MEASURE,
        "tolerance_rule": "1e-6 (float32) or 1e-12 (float64) times sqrt(terms)",
        "passed": all(r.passed for r in results),
        "results": [asdict(r) for r in results],
    }
