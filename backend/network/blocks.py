"""The network's building blocks: ResNet blocks, VAN's large-kernel attention, squeeze-and-excitation, the attention
placed after each stage, MSMA's multi-scale fusion and the per-attribute heads."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LKA_KERNELS


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1, self.conv2 = conv_bn(cin, width, 3, stride), conv_bn(width, width, 3)
        self.downsample = conv_bn(cin, width, 1, stride) if stride != 1 or cin != width else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(F.relu(self.conv1(x))) + self.downsample(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1, self.conv2, self.conv3 = conv_bn(cin, width, 1), conv_bn(width, width, 3, stride), \
            conv_bn(width, cout, 1)
        self.downsample = conv_bn(cin, cout, 1, stride) if stride != 1 or cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.conv2(F.relu(self.conv1(x))))
        return F.relu(self.conv3(y) + self.downsample(x))


class DepthwiseSeparable(nn.Module):
    """MobileNet's block for CPUs: 3x3 depth-wise (carrying the stride), 1x1 point-wise, a residual where the
    shape allows. `width` is the output width (expansion 1, like BasicBlock)."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.depthwise, self.pointwise = conv_bn(cin, cin, 3, stride, groups=cin), conv_bn(cin, width, 1)
        self.residual = stride == 1 and cin == width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(F.relu(self.depthwise(x)))
        return F.relu(y + x if self.residual else y)


class LargeKernelAttention(nn.Module):
    """VAN's LKA: a local depth-wise conv, a dilated depth-wise conv, 1x1; the result multiplies the input.
    kernels: (local, dilated, dilation), VAN's LKA_KERNELS by default."""

    def __init__(self, dim: int, kernels: tuple[int, int, int] = LKA_KERNELS):
        super().__init__()
        k0, k1, d = kernels
        self.conv0 = nn.Conv2d(dim, dim, k0, padding=k0 // 2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, k1, padding=d * (k1 // 2), groups=dim, dilation=d)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Module):
    """VAN's attention unit (1x1, GELU, LKA, 1x1, plus the input), run at dim / reduction channels inside so that
    it costs a fraction of the stage it follows (at full width it would add 60% to a ResNet-50's multiply-adds)."""

    def __init__(self, dim: int, reduction: int = 4, kernels: tuple[int, int, int] = LKA_KERNELS):
        super().__init__()
        inner = max(8, dim // reduction)
        self.norm = nn.BatchNorm2d(dim)
        self.proj_1, self.lka, self.proj_2 = nn.Conv2d(dim, inner, 1), LargeKernelAttention(inner, kernels), \
            nn.Conv2d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.lka(F.gelu(self.proj_1(self.norm(x)))))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: pooled features -> bottleneck MLP -> per-channel gate in (0, 1)."""

    def __init__(self, dim: int, reduction: int = 16):
        super().__init__()
        hidden = max(8, dim // reduction)
        self.fc1, self.fc2 = nn.Conv2d(dim, hidden, 1), nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class StageAttention(nn.Module):
    """The multi-level attention placed after a backbone stage: channel, then spatial (either may be off)."""

    def __init__(self, dim: int, channel: bool, spatial: bool, kernels: tuple[int, int, int] = LKA_KERNELS):
        super().__init__()
        self.channel = ChannelAttention(dim) if channel else nn.Identity()
        self.spatial = SpatialAttention(dim, kernels=kernels) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class Fusion(nn.Module):
    """MSMA's multi-scale fusion of stages 2-4: lateral 1x1 convs, a top-down pathway, large-kernel attention on
    each level -> the three levels [B, width, h, w] (strides 8, 16, 32); pooled and concatenated they are the
    heads' [B, 3 * width] features (MLANet.forward_features)."""

    def __init__(self, in_channels: list[int], width: int, attention: bool,
                 kernels: tuple[int, int, int] = LKA_KERNELS):
        super().__init__()
        self.lateral = nn.ModuleList([conv_bn(c, width, 1) for c in in_channels])
        self.attention = nn.ModuleList([SpatialAttention(width, kernels=kernels) if attention else nn.Identity()
                                        for _ in in_channels])
        self.out_features = width * len(in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = [lat(f) for lat, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(levels) - 2, -1, -1):  # top-down: coarse context into finer levels
            levels[i] = levels[i] + F.interpolate(levels[i + 1], size=levels[i].shape[-2:], mode="nearest")
        return [att(lv) for att, lv in zip(self.attention, levels, strict=True)]


class AttributeHead(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, drop: float):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(cin, hidden), nn.Dropout(drop), nn.Linear(hidden, cout)
        nn.init.zeros_(self.fc2.weight)  # every head starts at the zero vector: the mean face (decode_params)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))
