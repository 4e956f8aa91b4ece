"""The encoder/decoder's conv layers: every fast path gives torch's values and gradients."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from meld_core.algo.conv import (
    GEMM_WEIGHT_GRAD_MAX_POSITIONS,
    Conv2d,
    ConvTranspose2d,
    PackedStack,
    patches,
    run_stack,
)
from meld_core.algo.model import Encoder, LatentModel
from meld_core.config import ModelConfig
from meld_core.testing.core_fakes import tiny_model_config

pytestmark = pytest.mark.usefixtures("one_thread")


# (layer, input (C, H, W)): stride-2 with many and with few positions, full-kernel, 1x1 input.
CASES = [
    (lambda: Conv2d(3, 8, (10, 5), 2, (4, 2)), (3, 32, 16)),  # many positions: oneDNN weight grad
    (lambda: Conv2d(8, 16, (6, 3), 2, (2, 1)), (8, 16, 8)),  # 8x4 output: patch-GEMM weight grad
    (lambda: Conv2d(16, 16, (4, 2)), (16, 4, 2)),  # kernel covers the input: one matrix product
    (lambda: ConvTranspose2d(12, 16, (4, 2)), (12, 1, 1)),  # 1x1 input: one matrix product
    (lambda: ConvTranspose2d(16, 8, (6, 3), 2, (2, 1), (0, 1)), (16, 4, 2)),  # few input positions
    (lambda: ConvTranspose2d(8, 3, (10, 5), 2, (4, 2), (0, 1)), (8, 16, 8)),  # many input positions
]


@pytest.mark.parametrize("make,shape", CASES)
@pytest.mark.parametrize("slope", [None, 0.2])
def test_fast_paths_give_torchs_values_and_gradients(make, shape, slope):
    torch.manual_seed(0)
    layer = make().to(memory_format=torch.channels_last)
    x = torch.randn(5, *shape).contiguous(memory_format=torch.channels_last).requires_grad_()
    results = []
    for fast in (False, True):
        layer.fast = fast
        layer.zero_grad()
        x.grad = None
        y = layer.forward_leaky(x, slope)
        g = torch.randn_like(y, generator=torch.Generator().manual_seed(1))
        (y * g).sum().backward()
        results.append((y.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()))
    for name, slow, fast in zip(("output", "input grad", "weight grad", "bias grad"), *results):
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4, msg=name)


def test_the_gemm_threshold_covers_the_reference_8x4_maps_only():
    assert 8 * 4 <= GEMM_WEIGHT_GRAD_MAX_POSITIONS < 16 * 8


def test_bf16_autocast_tracks_fp32_through_the_fast_paths():
    torch.manual_seed(0)
    layer = Conv2d(8, 16, (6, 3), 2, (2, 1)).to(memory_format=torch.channels_last)
    x = torch.randn(4, 8, 16, 8).contiguous(memory_format=torch.channels_last)
    ref = F.leaky_relu(F.conv2d(x, layer.weight, layer.bias, 2, (2, 1)), 0.2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer.forward_leaky(x, 0.2)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), ref, rtol=3e-2, atol=3e-2)


def test_patches_are_the_sliding_windows():
    z = torch.arange(2 * 3 * 5 * 4, dtype=torch.float32).view(2, 3, 5, 4)
    cols = patches(z, (3, 2), 2, (1, 0), (3, 2))
    unfolded = F.unfold(z, (3, 2), padding=(1, 0), stride=2)  # (N, C*kh*kw, L), columns in (c, ky, kx)
    expect = unfolded.view(2, 3, 3, 2, 6).permute(0, 4, 2, 3, 1).reshape(12, 18)
    torch.testing.assert_close(cols, expect)


def test_run_stack_fuses_each_activation_into_its_layer():
    calls = []

    class Recording(Conv2d):
        def forward_leaky(self, x, slope):
            calls.append(slope)
            return super().forward_leaky(x, slope)

    net = nn.Sequential(Recording(3, 4, 3, 2, 1), nn.LeakyReLU(0.3), Recording(4, 4, 3, 2, 1))
    run_stack(net, torch.randn(1, 3, 8, 8))
    assert calls == [0.3, None]


def test_model_state_dict_keeps_torchs_layer_names():
    model = LatentModel(tiny_model_config(), action_dim=2)
    keys = set(model.state_dict())
    assert {"encoder.net.0.weight", "encoder.net.8.bias", "decoder.net.0.weight",
            "decoder.net.8.weight"} <= keys


needs_packing = pytest.mark.skipif(PackedStack.build(nn.Sequential(Conv2d(3, 4, 3)), (3, 3)) is None,
                                   reason="this torch has no oneDNN weight packing")


@needs_packing
@pytest.mark.parametrize("image_shape,base_depth", [((64, 32, 3), 8), ((128, 64, 3), 4)])
@pytest.mark.parametrize("batch", [1, 3])
def test_packed_stack_gives_the_bf16_encoders_values_and_follows_its_weights(image_shape, base_depth, batch):
    torch.manual_seed(0)
    config = ModelConfig(image_shape=image_shape, base_depth=base_depth)
    encoder = Encoder(config).to(memory_format=torch.channels_last)
    packed = PackedStack.build(encoder.net, image_shape[:2])
    x = torch.rand(batch, 3, *image_shape[:2]).contiguous(memory_format=torch.channels_last)

    def plain_bf16():
        copy = Encoder(config)
        copy.load_state_dict(encoder.state_dict())
        return copy.to(torch.bfloat16).to(memory_format=torch.channels_last)(x.to(torch.bfloat16)).float()

    with torch.inference_mode():
        y = packed(x)
        assert y.dtype == torch.bfloat16 and y.shape == (batch, 8 * base_depth)
        torch.testing.assert_close(y.float(), plain_bf16(), rtol=0.02, atol=2e-3)
        with torch.no_grad():
            for p in encoder.parameters():
                p.mul_(-1.5)
        stale = packed(x).float()
        assert torch.equal(stale, y.float())  # packed weights are a copy until refreshed
        packed.refresh()
        torch.testing.assert_close(packed(x).float(), plain_bf16(), rtol=0.02, atol=2e-3)
        assert not torch.allclose(packed(x).float(), stale, atol=1e-3)
