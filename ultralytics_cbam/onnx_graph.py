"""The graph CBAM records in ONNX exports, laid out for ONNX Runtime's blocked (NCHWc) CPU kernels.

ONNX Runtime runs convolutions in a blocked layout and converts a map back to NCHW for every op that lacks a blocked
kernel. The plain formula broadcasts its gates over maps, which no blocked kernel does, so each CBAM layer cost two
full-size layout conversions, and the Concat and Resize layers fed by CBAM fell back to NCHW as well. This graph gives
every full-size op a blocked kernel:

* channel descriptors: GlobalAveragePool and GlobalMaxPool, which read the blocked map;
* the shared MLP on both descriptors at once, as 1x1 convolutions in two groups (W1 in each) and one over both
  (W2 twice), W2 (relu(W1 a + b1) + relu(W1 m + b1)) + 2 b2, its hidden layer padded with zero units to a whole number
  of channel blocks;
* channel gate: a nearest-neighbour Resize of (N, C, 1, 1) to the map's size, so that the multiply sees two maps
  of one shape;
* spatial descriptors: the mean and max over the last axis of the map transposed to NHWC, a transpose that
  ONNX Runtime folds into its layout conversion (the max as a GlobalMaxPool, see ``_GlobalMaxPool``);
* spatial gate: the k x k convolution computes each 4 x 4 tile of the gate at once, as 16 output channels of a
  convolution with stride 4 that ONNX Runtime runs blocked, then DepthToSpace, cropped to the map's size where that
  is not a fixed multiple of 4 (see ``_SpatialGate``). Then a 1 -> C convolution with unit weights repeats it over
  the channels.

Where the export leaves the map's height and width free (dynamic exports), the channel gate cannot be a blocked
Resize, whose scales must be fixed; it is broadcast over the map instead, and in CBAM so is the spatial gate after
it, in place of the 1 -> C convolution (see ``_ByMapSize``). Every convolution still runs blocked.

ChannelAttention and SpatialAttention used as separate layers record their half of it. The maths is the paper's; only
summation orders differ. Sizes stay symbolic, so dynamic exports run at any size. Both of torch's exporters record this
graph: the TorchScript tracer (which Ultralytics' ``format=onnx`` asks for in recent releases) through the
``symbolic`` methods of the autograd Functions below, and the torch.export-based one (``dynamo=True``, torch's default
from 2.9 on, and so what ``format=onnx`` of Ultralytics 8.1 and 8.2 runs) through ``torch.onnx.ops.symbolic`` (torch
2.8 and later).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

_BLOCK = 16  # channels per block of ONNX Runtime's blocked layout with AVX-512 (8 with AVX2)
_TILE = 4  # pixels per side of the tiles of the spatial gate computed at once: 16 channels, one channel block


class _GlobalMaxPool(torch.autograd.Function):
    """Max over all dimensions after the first two, kept as size 1: GlobalMaxPool in ONNX.

    The stock export of a max is a ReduceMax, whose axes are an input from opset 18 on: ONNX Runtime's symbolic shape
    inference (which its quantisation tools and Ultralytics' QNN export run) then loses the shapes of everything
    after it. The stock export of an adaptive max pooling pins the input size.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.amax(tuple(range(2, x.dim())), keepdim=True)

    @staticmethod
    def symbolic(g, x):
        return g.op("GlobalMaxPool", x)


class _RepeatOverMap(torch.autograd.Function):
    """(N, C, 1, 1) weights repeated over the fixed H x W of `like`: a nearest-neighbour Resize with constant scales
    in ONNX (ONNX Runtime's blocked kernel needs them to be; converters such as onnx2tf read them only then). Before
    opset 11, whose Resize takes no scales input, and where H or W are dynamic, it is an Expand.
    """

    @staticmethod
    def forward(ctx, weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return weights.expand_as(like)

    @staticmethod
    def symbolic(g, weights, like):
        size = _static_map_size(like)
        if g.opset < 11 or size is None:
            return g.op("Expand", weights, g.op("Shape", like))
        scales = g.op("Constant", value_t=torch.tensor([1.0, 1.0, *map(float, size)]))
        roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
        return g.op(
            "Resize",
            weights,
            roi,
            scales,
            mode_s="nearest",
            coordinate_transformation_mode_s="asymmetric",
            nearest_mode_s="floor",
        )


class _SpatialGate(torch.autograd.Function):
    """sigmoid(conv(descriptors)) for the stock 2 -> 1, k x k spatial convolution, given its weight in two layouts.

    ONNX Runtime has no blocked kernel for a convolution with one output channel and runs it through im2col. The
    graph computes each 4 x 4 tile of the gate at once instead: a convolution with stride 4 and 16 output channels,
    one per pixel of the tile, each the k x k kernel shifted to its pixel within a (k + 3) x (k + 3) one, which ONNX
    Runtime runs blocked; DepthToSpace then lays the tiles out. Where the height or width is not a fixed multiple of
    4, the convolution pads 3 more zero rows and columns at the bottom and right, which gives ceil(H / 4) x
    ceil(W / 4) tiles, and a Slice crops the gate to H x W. Dynamic exports before opset 10, whose Slice takes no
    ends from the graph, get a depthwise convolution and a sum.
    """

    @staticmethod
    def forward(ctx, descriptors: torch.Tensor, depthwise: torch.Tensor, tiled: torch.Tensor, k: int) -> torch.Tensor:
        per_channel = F.conv2d(descriptors, depthwise, padding=k // 2, groups=2)
        return per_channel.sum(1, keepdim=True).sigmoid()

    @staticmethod
    def symbolic(g, descriptors, depthwise, tiled, k):
        size = _static_map_size(descriptors)
        if size is None and g.opset < 10:  # Slice takes the crop's ends as an input from opset 10 on
            return _depthwise_gate(g, descriptors, depthwise, k)
        extra, attributes = _tiled_conv(k, size)
        whole_tiles = not extra
        tiles = g.op("Conv", descriptors, tiled, **{f"{name}_i": value for name, value in attributes.items()})
        mode = {"mode_s": "DCR"} if g.opset >= 11 else {}  # DCR, the only mode before opset 11
        gate = g.op("DepthToSpace", g.op("Sigmoid", tiles), blocksize_i=_TILE, **mode)
        if whole_tiles:
            return gate
        if size is not None and g.opset < 10:
            return g.op("Slice", gate, axes_i=[2, 3], starts_i=[0, 0], ends_i=list(size))
        if size is not None:
            ends = _ints(g, list(size))
        else:
            ends = g.op("Slice", g.op("Shape", descriptors), *(_ints(g, v) for v in ([2], [4], [0])))
        return g.op("Slice", gate, _ints(g, [0, 0]), ends, _ints(g, [2, 3]))


def _tiled_conv(k: int, size: tuple[int, int] | None) -> tuple[int, dict[str, list[int]]]:
    """The zero rows and columns the tiled convolution adds at the bottom and right (none where the map's fixed size is
    whole tiles, else 3, which gives ceil(H / 4) x ceil(W / 4) tiles), and its ONNX attributes."""
    extra = 0 if size is not None and all(s % _TILE == 0 for s in size) else _TILE - 1
    pad = k // 2
    return extra, {
        "kernel_shape": [k + _TILE - 1] * 2,
        "strides": [_TILE] * 2,
        "pads": [pad, pad, pad + extra, pad + extra],
    }


def _depthwise_gate(g, descriptors, depthwise, k: int):
    """sigmoid(conv(descriptors)) as a depthwise convolution and a sum over its two channels."""
    per_channel = g.op("Conv", descriptors, depthwise, group_i=2, kernel_shape_i=[k, k], pads_i=[k // 2] * 4)
    if g.opset >= 13:
        summed = g.op("ReduceSum", per_channel, _ints(g, [1]), keepdims_i=1)
    else:
        summed = g.op("ReduceSum", per_channel, axes_i=[1], keepdims_i=1)
    return g.op("Sigmoid", summed)


def _ints(g, values: list[int]):
    """A constant int64 tensor in the graph being built."""
    return g.op("Constant", value_t=torch.tensor(values))


@functools.lru_cache
def _tiled_indices(k: int) -> tuple[list[int], list[float]]:
    """For each entry of the tiled (16, 2, k + 3, k + 3) kernel, the index of the k x k kernel's entry it holds (in
    the flattened (1, 2, k, k) weight), and 1.0 where it holds one, 0.0 where it is zero.

    Output channel r * 4 + s is pixel (r, s) of a tile (DepthToSpace, DCR), which reads the descriptors at offsets
    (r, s) to (r + k - 1, s + k - 1) from the tile's corner (less the padding): the kernel shifted by (r, s).
    """
    size, indices, mask = k + _TILE - 1, [], []
    for r, s, c, u, v in itertools.product(range(_TILE), range(_TILE), range(2), range(size), range(size)):
        inside = 0 <= u - r < k and 0 <= v - s < k
        indices.append((c * k + u - r) * k + v - s if inside else 0)
        mask.append(1.0 if inside else 0.0)
    return indices, mask


def _spatial_gate(conv: nn.Conv2d, descriptors: torch.Tensor) -> torch.Tensor:
    """sigmoid(conv(descriptors)) of the stock 2 -> 1 spatial convolution (see _SpatialGate)."""
    k, weight = conv.kernel_size[0], conv.weight
    indices, mask = _tiled_indices(k)
    with warnings.catch_warnings():  # constant index and mask tensors, which the tracer records as such
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        indices, mask = torch.tensor(indices, device=weight.device), torch.tensor(mask).to(weight)
    tiled = (weight.reshape(-1)[indices] * mask).view(_TILE * _TILE, 2, k + _TILE - 1, k + _TILE - 1)
    if _records_symbolic_ops():
        return _tiled_gate_ops(descriptors, tiled, k)
    return _SpatialGate.apply(descriptors, weight.view(2, 1, k, k), tiled, k)


def _tiled_gate_ops(descriptors: torch.Tensor, tiled: torch.Tensor, k: int) -> torch.Tensor:
    """_SpatialGate's graph (from opset 18 on) for the torch.export-based exporter."""
    n, _, h, w = descriptors.shape
    size = _fixed_map_size(descriptors)
    extra, attributes = _tiled_conv(k, size)
    whole_tiles = not extra
    rows, columns = (h + extra) // _TILE, (w + extra) // _TILE
    tiles = _onnx_op("Conv", descriptors, tiled, shape=(n, _TILE * _TILE, rows, columns), **attributes)
    gate = _onnx_op("DepthToSpace", tiles.sigmoid(), shape=(n, 1, rows * _TILE, columns * _TILE), blocksize=_TILE)
    if whole_tiles:
        return gate
    if size is None:
        return gate[:, :, :h, :w]
    starts, ends, axes = (torch.tensor(v, device=gate.device) for v in ([0, 0], list(size), [2, 3]))
    return _onnx_op("Slice", gate, starts, ends, axes, shape=(n, 1, h, w))  # one Slice, as the tracer's


def _static_map_size(value) -> tuple[int, int] | None:
    """(H, W) of a 4-D value in an ONNX graph being built, where the export fixes both; None where it does not."""
    sizes = value.type().varyingSizes() if value.type().kind() == "TensorType" else None
    if sizes is None or len(sizes) != 4 or None in sizes[2:]:
        return None
    return sizes[2], sizes[3]


def _fixed_map_size(x: torch.Tensor) -> tuple[int, int] | None:
    """(H, W) of a 4-D map in torch.export, where the export fixes both; None where it does not."""
    h, w = x.shape[2:]
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def symbolic_ops_available() -> bool:
    """Whether torch has torch.onnx.ops.symbolic (2.8 on), through which the torch.export-based exporter records ops."""
    return hasattr(getattr(torch.onnx, "ops", None), "symbolic")


def records_blocked_graph() -> bool:
    """Whether the ONNX export in progress can record this graph: always in the TorchScript tracer, in the
    torch.export-based exporter where torch has torch.onnx.ops.symbolic."""
    return torch.jit.is_tracing() or symbolic_ops_available()


def _records_symbolic_ops() -> bool:
    """True in an ONNX export by the torch.export-based exporter where torch has torch.onnx.ops.symbolic."""
    return not torch.jit.is_tracing() and records_blocked_graph()


def _onnx_op(op_type: str, *inputs: torch.Tensor, shape: Sequence, **attributes) -> torch.Tensor:
    """One ONNX op for the torch.export-based exporter, with an output of `shape` and the first input's dtype."""
    return torch.onnx.ops.symbolic(op_type, inputs, attributes, dtype=inputs[0].dtype, shape=shape)


def _repeat_over_map(weights: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N, C, 1, 1) weights repeated over the map `like` (see _RepeatOverMap) in either exporter."""
    if not _records_symbolic_ops():
        return _RepeatOverMap.apply(weights, like)
    size = _fixed_map_size(like)
    if size is None:
        return weights.expand_as(like)
    scales = torch.tensor([1.0, 1.0, *map(float, size)], device=weights.device)
    roi = torch.tensor([], dtype=torch.float32, device=weights.device)
    return _onnx_op(
        "Resize",
        weights,
        roi,
        scales,
        shape=like.shape,
        mode="nearest",
        coordinate_transformation_mode="asymmetric",
        nearest_mode="floor",
    )


def _by_map_size(like: torch.Tensor, fixed: Callable[[], torch.Tensor], varying: Callable[[], torch.Tensor]):
    """fixed() where the export fixes the height and width of `like`, varying() where it does not (see _ByMapSize)."""
    if _records_symbolic_ops():
        return fixed() if _fixed_map_size(like) is not None else varying()
    return _ByMapSize.apply(like, fixed(), varying())


def global_max(x: torch.Tensor) -> torch.Tensor:
    """The max over all dimensions after the first two, kept as size 1; a GlobalMaxPool in ONNX (see _GlobalMaxPool)."""
    if _records_symbolic_ops():
        return _onnx_op("GlobalMaxPool", x, shape=(*x.shape[:2], *[1] * (x.dim() - 2)))
    return _GlobalMaxPool.apply(x)


def channel_max(x: torch.Tensor) -> torch.Tensor:
    """x.amax(1, keepdim=True) of an (N, C, H, W) map: a GlobalMaxPool over its pixel rows (see _pixel_rows)."""
    return global_max(_pixel_rows(x)).view(x.shape[0], 1, x.shape[2], x.shape[3])


def _pixel_rows(x: torch.Tensor) -> torch.Tensor:
    """An (N, C, H, W) map as (N, H * W, 1, C): the transpose to NHWC, with a singleton axis that keeps H * W and C
    apart for converters that infer layouts from shapes (onnx2tf reduces the wrong axis of an (N, P, C)
    GlobalMaxPool when P == C)."""
    n, _, h, w = x.shape
    return x.permute(0, 2, 3, 1).reshape(n, h * w, 1, -1)


def blocked_layout_cbam(cbam: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """CBAM(x) in ops that ONNX Runtime runs on blocked maps (see the module docstring)."""
    return blocked_spatial_attention(cbam.spatial, blocked_channel_attention(cbam.channel, x), after_channel_gate=True)


def blocked_channel_attention(channel: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """ChannelAttention(x) in ops that ONNX Runtime runs on blocked maps. Where the export leaves the map's size
    free, the gate is broadcast over it instead: ONNX Runtime's blocked Resize needs fixed scales, and its generic
    Resize is several times slower than a broadcast multiply."""
    w1, b1, w2 = _blocked_hidden(channel.fc1, channel.fc2)
    b2 = channel.fc2.bias
    if _records_symbolic_ops():  # torch.export's records a ReduceMean, which has no blocked kernel
        mean = _onnx_op("GlobalAveragePool", x, shape=(*x.shape[:2], 1, 1))
    else:
        mean = F.adaptive_avg_pool2d(x, 1)
    descriptors = torch.cat((mean, global_max(x)), dim=1)
    hidden = F.conv2d(descriptors, torch.cat((w1, w1)), None if b1 is None else torch.cat((b1, b1)), groups=2).relu()
    gate = F.conv2d(hidden, torch.cat((w2, w2), dim=1), None if b2 is None else 2 * b2).sigmoid()
    return _by_map_size(x, lambda: x * _repeat_over_map(gate, x), lambda: x * gate)


def blocked_spatial_attention(spatial: nn.Module, y: torch.Tensor, after_channel_gate: bool = False) -> torch.Tensor:
    """SpatialAttention(y) in ops that ONNX Runtime runs on blocked maps (`y` with a fixed number of channels).

    After a channel gate that the export broadcasts (maps of free size), `y` is in NCHW, and the spatial gate is
    broadcast over its channels too rather than repeated by a convolution.
    """
    n, _, h, w = y.shape
    pixels = _pixel_rows(y)
    means_and_maxima = torch.cat((pixels.mean(3, keepdim=True), global_max(pixels)), dim=1)
    gate = _spatial_gate(spatial.conv, means_and_maxima.view(n, 2, h, w))
    with warnings.catch_warnings():  # the channels are fixed by the layers around; the tracer may record them so
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        channels = int(y.shape[1])

    def repeated() -> torch.Tensor:
        return y * F.conv2d(gate, gate.new_ones((channels, 1, 1, 1)))

    return _by_map_size(y, repeated, lambda: y * gate) if after_channel_gate else repeated()


class _ByMapSize(torch.autograd.Function):
    """`fixed` where the export fixes the height and width of `like`, `varying` where it does not. Both are
    traced, and the export drops the ops of the one it does not keep."""

    @staticmethod
    def forward(ctx, like: torch.Tensor, fixed: torch.Tensor, varying: torch.Tensor) -> torch.Tensor:
        return fixed

    @staticmethod
    def symbolic(g, like, fixed, varying):
        return fixed if _static_map_size(like) is not None else varying


def _blocked_hidden(fc1: nn.Conv2d, fc2: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """W1, b1 and W2 of the MLP with its hidden layer padded by zero units to a multiple of 16, the largest channel
    block of ONNX Runtime's blocked kernels, so that both 1x1 convolutions run on them. A padded unit is relu(0) = 0
    and has zero weights in W2, so the output is unchanged."""
    w1, b1, w2 = fc1.weight, fc1.bias, fc2.weight
    extra = -fc1.out_channels % _BLOCK
    if not extra:
        return w1, b1, w2
    w1 = torch.cat((w1, w1.new_zeros((extra, fc1.in_channels, 1, 1))))
    b1 = None if b1 is None else torch.cat((b1, b1.new_zeros(extra)))
    return w1, b1, torch.cat((w2, w2.new_zeros((fc2.out_channels, extra, 1, 1))), dim=1)
