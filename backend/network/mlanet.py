"""MLANet: a hierarchical CNN with multi-level attention, multi-scale fusion and one head per face attribute.

After *Hierarchical MLANet* (attention after every stage of a pre-trained hierarchical backbone, so low-level
contours and high-level identity/expression features are both re-weighted) and *MSMA* (multi-scale feature fusion
with VAN's large-kernel attention, and multi-attribute learning with a head per attribute).

    image [B, 3, 224, 224] in [0, 1]
      -> stem (stride 4) -> 4 stages (strides 4, 8, 16, 32), each followed by StageAttention
         (channel attention, then large-kernel spatial attention, residual)
      -> fusion of stages 2-4 (lateral 1x1, top-down sum, large-kernel attention per level, pooled, concatenated)
      -> one MLP head per attribute -> FaceParams; optionally a points head reading the fusion's stride-16 map
         (not pooled) -> the 68 points in the crop

Variants (`create_network(name)`): "mlanet_r50" (default; ResNet-50 body), "mlanet_r18" (ResNet-18 body, for
CPU users), "mlanet_tiny" (for tests). Every attention and the fusion can be switched off by config for ablations.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import NamedTuple

import torch
from torch import nn

from ..io.errors import MlafaceError
from ..model.params import FaceParams
from .blocks import AttributeHead, BasicBlock, Bottleneck, DepthwiseSeparable, Fusion, StageAttention, conv_bn
from .config import DEFAULT_VARIANT, VARIANTS, NetworkConfig
from .decode import crop_points, decode_params, landmark_sigma, param_layout

BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck, "separable": DepthwiseSeparable}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Stage(nn.Module):
    def __init__(self, block: type, cin: int, width: int, depth: int, stride: int, cfg: NetworkConfig):
        super().__init__()
        blocks = []
        for i in range(depth):
            blocks.append(block(cin, width, stride if i == 0 else 1))
            cin = width * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.attention = StageAttention(cin, cfg.channel_attention, cfg.spatial_attention, cfg.lka_kernels)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.blocks(x))



class Prediction(NamedTuple):
    """What a network predicts for B crops: params (FaceParams in the crop camera); points [B, 68, 2] crop pixels
    from the points head, or None where the variant has none; sigma [B, 68] the expected error of the points the
    pipeline follows (the head's, else the face model's projected landmarks) in crop pixels, or None where the
    variant has no confidence head."""

    params: FaceParams
    points: torch.Tensor | None
    sigma: torch.Tensor | None


class MLANet(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        block = BLOCKS[cfg.block]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if cfg.block == "separable":  # stride 4 without a 7x7 conv or max-pooling: 3x3 conv, then depth-wise
            self.stem = nn.Sequential(conv_bn(3, cfg.stem_width, 3, 2), nn.ReLU(inplace=True),
                                      DepthwiseSeparable(cfg.stem_width, cfg.stem_width, 2))
        else:
            self.stem = nn.Sequential(conv_bn(3, cfg.stem_width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], cfg.stem_width
        for i, (depth, width) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            stages.append(Stage(block, cin, width, depth, 1 if i == 0 else 2, cfg))
            cin = stages[-1].out_channels
        self.stages = nn.ModuleList(stages)
        if cfg.fusion:
            self.fusion = Fusion([s.out_channels for s in stages[1:]], cfg.fusion_width, cfg.spatial_attention,
                                 cfg.lka_kernels)
            n_features, map_channels = self.fusion.out_features, cfg.fusion_width
        else:
            self.fusion = None
            n_features, map_channels = cin, stages[2].out_channels
        side = cfg.image_size
        for _ in range(4):  # the stem's two stride-2 steps, then stages 2 and 3 (3x3 stride 2, padding 1)
            side = (side + 1) // 2
        self.heads = nn.ModuleDict({
            name: AttributeHead(map_channels * side * side if name == "points" else n_features, cfg.head_width,
                                size, cfg.drop)
            for name, size in param_layout(cfg).items()})
        self.num_features = n_features
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def check_input(self, image: torch.Tensor) -> None:
        s = self.cfg.image_size
        if image.dim() != 4 or image.shape[1] != 3:
            raise MlafaceError(f"expected images [B, 3, {s}, {s}], got {tuple(image.shape)} (3 colour channels)")
        if tuple(image.shape[-2:]) != (s, s):
            raise MlafaceError(f"{self.cfg.name} takes {s}x{s} crops, got {image.shape[-2]}x{image.shape[-1]}")
        if not torch.isfinite(image).all():
            raise MlafaceError("input images contain NaN or infinite values")

    def forward_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image: [B, 3, S, S] RGB in [0, 1] -> (the heads' features [B, num_features]: the fusion's levels
        pooled, or the last stage's; the points head's map [B, C, S/16, S/16]: the fusion's stride-16 level, or
        stage 3's), the map keeping where things are, which pooling loses."""
        x = self.stem((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        if self.fusion is None:
            return x.mean((2, 3)), feats[2]
        levels = self.fusion(feats[1:])
        return torch.cat([lv.mean((2, 3)) for lv in levels], dim=1), levels[1]

    def forward_head(self, features: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        """features [B, num_features], spatial [B, C, S/16, S/16] (forward_features) -> [B, P] parameter vector
        (layout `param_layout`)."""
        return torch.cat([head(spatial.flatten(1) if name == "points" else features)
                          for name, head in self.heads.items()], dim=1)

    def forward_raw(self, image: torch.Tensor) -> torch.Tensor:
        """image: [B, 3, S, S] RGB in [0, 1] -> [B, P] the parameter vector (unchecked: training's hot path)."""
        return self.forward_head(*self.forward_features(image))

    def forward(self, image: torch.Tensor) -> FaceParams:
        """image: [B, 3, S, S] RGB in [0, 1] -> FaceParams in the crop camera (network/decode.py)."""
        self.check_input(image)
        return decode_params(self.forward_raw(image).float(), self.cfg)

    def predict(self, image: torch.Tensor) -> Prediction:
        """image: [B, 3, S, S] RGB in [0, 1] -> Prediction (params, the points head's 68 points, their expected
        error), in the crop's camera and pixels."""
        self.check_input(image)
        raw = self.forward_raw(image).float()
        sigma = landmark_sigma(raw, self.cfg) * self.cfg.image_size if self.cfg.confidence else None
        points = crop_points(raw, self.cfg) if self.cfg.points else None
        return Prediction(decode_params(raw, self.cfg), points, sigma)



def create_network(name: str = DEFAULT_VARIANT, **overrides) -> MLANet:
    """A network of a named variant, with config fields overridden (e.g. fusion=False)."""
    if name not in VARIANTS:
        raise MlafaceError(f"unknown network variant {name!r}; choose from {', '.join(VARIANTS)}")
    unknown = set(overrides) - {f.name for f in fields(NetworkConfig)}
    if unknown:
        raise MlafaceError(f"unknown network config keys: {', '.join(sorted(unknown))}")
    return MLANet(replace(VARIANTS[name], **overrides))
