"""Convolution layers of the image encoder and decoder: torch's layers (same parameters, same
state_dict entries) with faster paths for the shapes MELD has.

- A layer whose kernel covers its whole input (the encoder's last, 'VALID' layer: 8x4 -> 1x1) or
  whose input is 1x1 (the decoder's first layer: 1x1 -> 8x4) is one matrix product on the
  channels-last flattening (`F.linear`); oneDNN ran the decoder's first layer at ~2 % of the bf16
  matmul peak and the encoder's last one's weight gradient at ~10 %.
- On CPU, a stride-2 layer with few positions per image (`GEMM_WEIGHT_GRAD_MAX_POSITIONS`; the 8x4
  maps of the reference encoder and decoder) computes its weight gradient as one GEMM over the
  extracted patches: oneDNN's backward-weights kernel ran there at 14-15 % of the bf16 peak, the
  patch GEMM at 40-50 % (bench/conv_layers.py). The forward pass and the data gradient stay oneDNN's.

Both give the same numbers as torch's layers up to the order of floating-point sums (a test checks
values and gradients). Layouts: activations are channels_last (NHWC in memory) throughout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# A stride-2 layer whose output (conv) or input (transposed conv) has at most this many positions per
# image takes its weight gradient from a patch GEMM on CPU (measured crossover: ~128, where both tie).
GEMM_WEIGHT_GRAD_MAX_POSITIONS = 64


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    if device.type in ("cpu", "cuda") and torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


def patches(z: Tensor, kernel: tuple[int, int], stride: int, padding: tuple[int, int],
            out_hw: tuple[int, int]) -> Tensor:
    """Sliding windows of z (N, C, H, W) -> (N * Ho * Wo, kh * kw * C), rows in (n, y, x) order and
    columns in (ky, kx, c) order; window (y, x) starts at row stride*y - padding[0] of z (zeros outside)."""
    n, c, h, w = z.shape
    ho, wo = out_hw
    (kh, kw), (pt, pl) = kernel, padding
    pb, pr = max(0, stride * (ho - 1) + kh - h - pt), max(0, stride * (wo - 1) + kw - w - pl)
    zp = F.pad(z.permute(0, 2, 3, 1), (0, 0, pl, pr, pt, pb)).contiguous()  # (N, H', W', C)
    sn, sh, sw, sc = zp.stride()
    windows = zp.as_strided((n, ho, wo, kh, kw, c), (sn, stride * sh, stride * sw, sh, sw, sc))
    return windows.reshape(n * ho * wo, kh * kw * c)


def _nhwc_rows(t: Tensor) -> Tensor:
    """(N, C, H, W) -> (N * H * W, C)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


class _Conv(torch.autograd.Function):
    """A CPU convolution (or transposed convolution), optionally followed by a leaky ReLU fused into
    oneDNN's kernel; its backward takes the activation's derivative from the output (slope > 0: the
    output has the input's sign) and, with `gemm_weight_grad`, the weight gradient from one patch GEMM."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, stride: int, padding: tuple[int, int],
                output_padding: tuple[int, int], transposed: bool, slope: float | None,
                gemm_weight_grad: bool) -> Tensor:
        s, pad, out_pad, dil = [stride, stride], list(padding), list(output_padding), [1, 1]
        if slope is None:
            y = torch.ops.aten.convolution(x, weight, bias, s, pad, dil, transposed, out_pad, 1)
        elif transposed:
            y = torch.ops.mkldnn._convolution_transpose_pointwise(x, weight, bias, pad, out_pad, s, dil, 1,
                                                                  "leaky_relu", [slope], "")
        else:
            y = torch.ops.mkldnn._convolution_pointwise(x, weight, bias, pad, s, dil, 1, "leaky_relu",
                                                        [slope], "")
        ctx.save_for_backward(x, weight, y if slope is not None else None)
        ctx.conf = (stride, padding, output_padding, transposed, bias is not None, slope, gemm_weight_grad)
        return y

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, weight, y = ctx.saved_tensors
        stride, padding, output_padding, transposed, has_bias, slope, gemm = ctx.conf
        grad = grad.contiguous(memory_format=torch.channels_last)
        if slope is not None:
            grad = torch.ops.aten.leaky_relu_backward(grad, y, slope, True)
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx, gw, _ = torch.ops.aten.convolution_backward(
            grad, x, weight, None, [stride, stride], list(padding), [1, 1], transposed, list(output_padding),
            1, [need_x, need_w and not gemm, False])
        if need_w and gemm:
            kernel = tuple(weight.shape[2:])
            if transposed:  # weight (Ci, Co, kh, kw): input positions x output windows
                cols = patches(grad, kernel, stride, padding, tuple(x.shape[2:]))
                gw = (_nhwc_rows(x).t() @ cols).view(x.shape[1], *kernel, grad.shape[1])
            else:  # weight (Co, Ci, kh, kw): output positions x input windows
                cols = patches(x, kernel, stride, padding, tuple(grad.shape[2:]))
                gw = (_nhwc_rows(grad).t() @ cols).view(grad.shape[1], *kernel, x.shape[1])
            gw = gw.permute(0, 3, 1, 2)  # channels_last, like the parameter
        gb = grad.sum((0, 2, 3)) if has_bias and need_b else None  # bf16 sums accumulate in fp32
        return gx, gw, gb, None, None, None, None, None, None


class FastConvMixin:
    """The choice of path (see the module docstring); `fast=False` runs torch's own layer."""

    fast: bool = True

    def _cpu_conv(self, x: Tensor, output_padding: tuple[int, int], transposed: bool, positions: int,
                  slope: float | None) -> Tensor:
        dtype = _autocast_dtype(x.device)
        weight, bias = self.weight, self.bias
        if dtype is not None:
            x, weight = x.to(dtype), weight.to(dtype)
            bias = bias.to(dtype) if bias is not None else None
        gemm = self.stride[0] > 1 and positions <= GEMM_WEIGHT_GRAD_MAX_POSITIONS
        return _Conv.apply(x.contiguous(memory_format=torch.channels_last), weight, bias, self.stride[0],
                           self.padding, output_padding, transposed, slope, gemm)

    def _use_cpu_path(self, x: Tensor) -> bool:
        return (self.fast and x.device.type == "cpu" and torch.backends.mkldnn.is_available()
                and (_autocast_dtype(x.device) or x.dtype) in (torch.float32, torch.bfloat16))


class Conv2d(FastConvMixin, nn.Conv2d):
    """nn.Conv2d (square stride, no dilation or groups) with the paths in the module docstring."""

    def covers(self, hw: tuple[int, ...]) -> bool:
        """True where the kernel covers an input of size `hw` whole: one output position."""
        return tuple(hw) == tuple(self.kernel_size) and tuple(self.padding) == (0, 0)

    def output_hw(self, hw: tuple[int, ...]) -> tuple[int, int]:
        """Output size for an input of size `hw`."""
        (h, w), (kh, kw), (ph, pw), s = hw, self.kernel_size, self.padding, self.stride[0]
        return (h + 2 * ph - kh) // s + 1, (w + 2 * pw - kw) // s + 1

    def matrix_weight(self) -> Tensor:
        """The weight as the matrix of the one-position case: (Co, kh * kw * Ci), columns in the
        channels-last flattening of the input."""
        return self.weight.permute(0, 2, 3, 1).reshape(self.out_channels, -1)

    def forward_leaky(self, x: Tensor, slope: float | None) -> Tensor:
        """The layer followed by a leaky ReLU of `slope` (None: no activation)."""
        if self.fast and self.covers(x.shape[2:]):
            y = F.linear(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1), self.matrix_weight(),
                         self.bias)[:, :, None, None]
        elif self._use_cpu_path(x):
            ho, wo = self.output_hw(x.shape[2:])
            return self._cpu_conv(x, (0, 0), False, ho * wo, slope)
        else:
            y = super().forward(x)
        return F.leaky_relu(y, slope) if slope is not None else y

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_leaky(x, None)


class ConvTranspose2d(FastConvMixin, nn.ConvTranspose2d):
    """nn.ConvTranspose2d (square stride, no dilation or groups) with the paths in the module docstring."""

    def forward_leaky(self, x: Tensor, slope: float | None) -> Tensor:
        """The layer followed by a leaky ReLU of `slope` (None: no activation)."""
        kh, kw = self.kernel_size
        if (self.fast and tuple(x.shape[2:]) == (1, 1) and self.padding == (0, 0)
                and self.output_padding == (0, 0)):
            w = self.weight.permute(2, 3, 1, 0).reshape(kh * kw * self.out_channels, self.in_channels)
            bias = self.bias.repeat(kh * kw) if self.bias is not None else None
            y = F.linear(x.reshape(x.shape[0], self.in_channels), w, bias)
            y = y.view(x.shape[0], kh, kw, self.out_channels).permute(0, 3, 1, 2)
        elif self._use_cpu_path(x):
            return self._cpu_conv(x, self.output_padding, True, x.shape[2] * x.shape[3], slope)
        else:
            y = super().forward(x)
        return F.leaky_relu(y, slope) if slope is not None else y

    def forward(self, x: Tensor, output_size: list[int] | None = None) -> Tensor:
        if output_size is not None:
            return super().forward(x, output_size)
        return self.forward_leaky(x, None)


def fused_layers(net: nn.Sequential) -> Iterator[tuple[nn.Module, float | None]]:
    """(layer, slope) of a Sequential of conv layers and LeakyReLUs: each LeakyReLU that follows a conv
    layer is fused into it (its slope; None: the layer runs alone)."""
    layers = list(net)
    i = 0
    while i < len(layers):
        layer = layers[i]
        following = layers[i + 1] if i + 1 < len(layers) else None
        if isinstance(layer, FastConvMixin) and isinstance(following, nn.LeakyReLU):
            yield layer, following.negative_slope
            i += 2
        else:
            yield layer, None
            i += 1


def run_stack(net: nn.Sequential, x: Tensor) -> Tensor:
    """Run a Sequential of conv layers and LeakyReLUs, fusing each activation into the layer before it."""
    for layer, slope in fused_layers(net):
        x = layer.forward_leaky(x, slope) if slope is not None else layer(x)
    return x


class _PackedLayer(NamedTuple):
    weight: Tensor  # oneDNN-packed bf16 weight
    bias: Tensor | None
    activation: str  # oneDNN post-op: "leaky_relu" or "none"
    scalars: list[float]
    padding: list[int] | None  # None: the one-position layer, a packed matrix product
    stride: list[int] | None


class PackedStack(nn.Module):
    """Inference-only copy of a `run_stack` Sequential (conv layers, each followed by a LeakyReLU) for
    one input size: bf16 weights reordered once into oneDNN's blocked layout, where the plain layers
    reorder them on every call. At batch 1 (act()) that reorder dominates: the reference encoder's
    weights are 22 MB in bf16, read and written again per frame; packed, the encoder runs about 2x
    faster and moves less memory, which is what a learner on the other core competes for.

    `refresh()` copies the source stack's current weights in (a repack: call it between episodes,
    never inside a control tick). Build it with `PackedStack.build`, which returns None where this
    torch has no oneDNN packing (the caller keeps a plain bf16 copy).
    """

    def __init__(self, source: nn.Sequential, input_hw: tuple[int, int], batch: int):
        super().__init__()
        self.source, self.input_hw, self.batch = [source], tuple(input_hw), int(batch)
        self.dtype = torch.bfloat16
        self._plan: list[_PackedLayer] = []
        self.refresh()

    @staticmethod
    def build(source: nn.Sequential, input_hw: tuple[int, int], batch: int = 1) -> PackedStack | None:
        if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
                and hasattr(torch._C._nn, "mkldnn_reorder_conv2d_weight")):
            return None
        try:
            return PackedStack(source, input_hw, batch)
        except (RuntimeError, NotImplementedError):
            return None

    def refresh(self) -> None:
        """Repack the source's weights (after they changed)."""
        plan, hw = [], self.input_hw
        with torch.no_grad():
            for conv, slope in fused_layers(self.source[0]):
                if not isinstance(conv, Conv2d) or conv.groups != 1 or conv.dilation != (1, 1):
                    raise NotImplementedError(f"PackedStack packs Conv2d layers, got {type(conv).__name__}")
                bias = conv.bias.detach().to(torch.bfloat16) if conv.bias is not None else None
                activation = ("leaky_relu", [slope]) if slope is not None else ("none", [])
                if conv.covers(hw):  # one output position: a matrix product
                    weight = conv.matrix_weight().detach().to(torch.bfloat16).contiguous()
                    packed = torch.ops.mkldnn._reorder_linear_weight(weight, self.batch)
                    plan.append(_PackedLayer(packed, bias, *activation, None, None))
                    hw = (1, 1)
                else:
                    weight = conv.weight.detach().to(torch.bfloat16)
                    weight = weight.contiguous(memory_format=torch.channels_last)
                    padding, stride = list(conv.padding), [conv.stride[0]] * 2
                    packed = torch._C._nn.mkldnn_reorder_conv2d_weight(
                        weight.to_mkldnn(), padding, stride, [1, 1], 1, [self.batch, conv.in_channels, *hw])
                    plan.append(_PackedLayer(packed, bias, *activation, padding, stride))
                    hw = conv.output_hw(hw)
        self._plan = plan

    def forward(self, x: Tensor) -> Tensor:
        """(N, C, H, W) -> the stack's output flattened to (N, features), in bf16."""
        x = x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        for layer in self._plan:
            if layer.padding is None:  # the one-position layer
                x = torch.ops.mkldnn._linear_pointwise(x.permute(0, 2, 3, 1).reshape(x.shape[0], -1),
                                                       layer.weight, layer.bias, layer.activation,
                                                       layer.scalars, "")
            else:
                x = torch.ops.mkldnn._convolution_pointwise(x, layer.weight, layer.bias, layer.padding,
                                                            layer.stride, [1, 1], 1, layer.activation,
                                                            layer.scalars, "")
        return x.flatten(1)
