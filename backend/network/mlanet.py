"""MLANet: a hierarchical CNN with multi-level attention, multi-scale fusion and one head per face attribute.

After *Hierarchical MLANet* (attention after every stage of a pre-trained hierarchical backbone, so low-level
contours and high-level identity/expression features are both re-weighted) and *MSMA* (multi-scale feature fusion
with VAN's large-kernel attention, and multi-attribute learning with a head per attribute).

    image [B, 3, 224, 224] in [0, 1]
      -> stem (stride 4) -> 4 stages (strides 4, 8, 16, 32), each followed by StageAttention
         (channel attention, then large-kernel spatial attention, residual)
      -> fusion of stages 2-4 (lateral 1x1, top-down sum, large-kernel attention per level, pooled, concatenated)
      -> one MLP head per attribute -> FaceParams

Variants (`create_network(name)`): "mlanet_r50" (default; ResNet-50 body), "mlanet_r18" (ResNet-18 body, for
CPU users), "mlanet_tiny" (for tests). Every attention and the fusion can be switched off by config for ablations.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..io.atomic import atomic_path
from ..io.errors import MlafaceError
from ..render.shading import ambient_sh

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CROP_FOCAL = 1015.0  # pixels at 224 x 224 (a 12.6 degree field of view): the crop camera of Deep3DFaceRecon
CROP_DEPTH = 1.0  # metres: at CROP_FOCAL the mean face then fills the canonical crop framing (backend.align)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and output sizes. The parameter vector layout is PARAM_LAYOUT (FaceParams.to_vector)."""

    name: str = "mlanet_r50"
    block: str = "bottleneck"  # "bottleneck" (ResNet-50 style) or "basic" (ResNet-18 style)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck blocks output 4x these
    stem_width: int = 64
    channel_attention: bool = True
    spatial_attention: bool = True  # large-kernel attention after each stage
    fusion: bool = True
    fusion_width: int = 256
    head_width: int = 512
    image_size: int = 224
    n_identity: int = 100
    n_expression: int = 53
    n_texture: int = 80
    drop: float = 0.0


VARIANTS = {
    "mlanet_r50": NetworkConfig(),
    "mlanet_r18": NetworkConfig(name="mlanet_r18", block="basic", depths=(2, 2, 2, 2), fusion_width=128,
                                head_width=256),
    "mlanet_tiny": NetworkConfig(name="mlanet_tiny", block="basic", depths=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                                 stem_width=16, fusion_width=32, head_width=64, image_size=64),
}
DEFAULT_VARIANT = "mlanet_r50"


def param_layout(cfg: NetworkConfig) -> dict[str, int]:
    """Attribute -> width of its slice of the parameter vector, in vector order."""
    return {"identity": cfg.n_identity, "expression": cfg.n_expression, "texture": cfg.n_texture,
            "rotation": 6, "translation": 3, "log_focal": 1, "sh": 27}


@dataclass(frozen=True)
class FaceParams:
    """The network's prediction for a batch, in the units of the face model and camera.py.

    identity: [B, 100] coefficients (about N(0, 1)); expression: [B, 53] shape-key weights in [0, 1]
    texture: [B, K] albedo coefficients; rotation: [B, 3, 3] model -> camera; translation: [B, 3] metres,
    camera space (z < 0); focal: [B] pixels for the crop it was predicted from; sh: [B, 27] camera-space light
    raw: [B, P] the parameter vector before the fixed maps (layout `param_layout`)
    """

    identity: torch.Tensor
    expression: torch.Tensor
    texture: torch.Tensor
    rotation: torch.Tensor
    translation: torch.Tensor
    focal: torch.Tensor
    sh: torch.Tensor
    raw: torch.Tensor


def rotation_from_6d(x: torch.Tensor) -> torch.Tensor:
    """[B, 6] -> [B, 3, 3] rotation matrices whose first two columns come from x by Gram-Schmidt (Zhou et al.)."""
    a, b = x[:, :3], x[:, 3:]
    c0 = F.normalize(a, dim=-1)
    c1 = F.normalize(b - (c0 * b).sum(-1, keepdim=True) * c0, dim=-1)
    return torch.stack([c0, c1, torch.linalg.cross(c0, c1, dim=-1)], dim=-1)


def decode_params(raw: torch.Tensor, cfg: NetworkConfig) -> FaceParams:
    """The fixed maps from the parameter vector to FaceParams. A zero vector is the mean face, no expression,
    frontal at CROP_DEPTH, ambient light: heads start there."""
    parts = dict(zip(param_layout(cfg), raw.split(list(param_layout(cfg).values()), dim=1), strict=True))
    eye6 = raw.new_tensor([1.0, 0, 0, 0, 1.0, 0])
    t = parts["translation"]
    return FaceParams(
        identity=parts["identity"],
        expression=torch.sigmoid(parts["expression"] - 4.0),  # 0.018 at zero
        texture=parts["texture"],
        rotation=rotation_from_6d(parts["rotation"] + eye6),
        translation=torch.stack([0.1 * t[:, 0], 0.1 * t[:, 1], -CROP_DEPTH * torch.exp(0.2 * t[:, 2])], dim=1),
        focal=CROP_FOCAL * (cfg.image_size / 224) * torch.exp(0.2 * parts["log_focal"][:, 0]),
        sh=ambient_sh(0.8, raw.shape[0]).to(raw) + parts["sh"],
        raw=raw,
    )


# --- blocks ------------------------------------------------------------------------------------------------------

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


class LargeKernelAttention(nn.Module):
    """VAN's LKA: 5x5 depth-wise, 7x7 depth-wise with dilation 3, 1x1; the result multiplies the input."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv1(self.conv_spatial(self.conv0(x)))


class SpatialAttention(nn.Module):
    """VAN's attention unit (1x1, GELU, LKA, 1x1, plus the input), run at dim / reduction channels inside so that
    it costs a fraction of the stage it follows (at full width it would add 60% to a ResNet-50's multiply-adds)."""

    def __init__(self, dim: int, reduction: int = 4):
        super().__init__()
        inner = max(8, dim // reduction)
        self.norm = nn.BatchNorm2d(dim)
        self.proj_1, self.lka, self.proj_2 = nn.Conv2d(dim, inner, 1), LargeKernelAttention(inner), \
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

    def __init__(self, dim: int, channel: bool, spatial: bool):
        super().__init__()
        self.channel = ChannelAttention(dim) if channel else nn.Identity()
        self.spatial = SpatialAttention(dim) if spatial else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spatial(self.channel(x))


class Stage(nn.Module):
    def __init__(self, block: type, cin: int, width: int, depth: int, stride: int, cfg: NetworkConfig):
        super().__init__()
        blocks = []
        for i in range(depth):
            blocks.append(block(cin, width, stride if i == 0 else 1))
            cin = width * block.expansion
        self.blocks = nn.Sequential(*blocks)
        self.attention = StageAttention(cin, cfg.channel_attention, cfg.spatial_attention)
        self.out_channels = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(self.blocks(x))


class Fusion(nn.Module):
    """MSMA's multi-scale fusion of stages 2-4: lateral 1x1 convs, a top-down pathway, large-kernel attention on
    each level, global pooling, concatenation -> [B, 3 * width]."""

    def __init__(self, in_channels: list[int], width: int, attention: bool):
        super().__init__()
        self.lateral = nn.ModuleList([conv_bn(c, width, 1) for c in in_channels])
        self.attention = nn.ModuleList([SpatialAttention(width) if attention else nn.Identity() for _ in in_channels])
        self.out_features = width * len(in_channels)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        levels = [lat(f) for lat, f in zip(self.lateral, feats, strict=True)]
        for i in range(len(levels) - 2, -1, -1):  # top-down: coarse context into finer levels
            levels[i] = levels[i] + F.interpolate(levels[i + 1], size=levels[i].shape[-2:], mode="nearest")
        return torch.cat([att(lv).mean((2, 3)) for att, lv in zip(self.attention, levels, strict=True)], dim=1)


class AttributeHead(nn.Module):
    def __init__(self, cin: int, hidden: int, cout: int, drop: float):
        super().__init__()
        self.fc1, self.drop, self.fc2 = nn.Linear(cin, hidden), nn.Dropout(drop), nn.Linear(hidden, cout)
        nn.init.zeros_(self.fc2.weight)  # every head starts at the zero vector: the mean face (decode_params)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(F.relu(self.fc1(x))))


# --- model -------------------------------------------------------------------------------------------------------

class MLANet(nn.Module):
    def __init__(self, cfg: NetworkConfig):
        super().__init__()
        self.cfg = cfg
        if cfg.block not in ("basic", "bottleneck") or len(cfg.depths) != 4 or len(cfg.widths) != 4:
            raise MlafaceError(f"bad network config: block {cfg.block!r}, {len(cfg.depths)} stages (need 4)")
        block = BasicBlock if cfg.block == "basic" else Bottleneck
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(conv_bn(3, cfg.stem_width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        stages, cin = [], cfg.stem_width
        for i, (depth, width) in enumerate(zip(cfg.depths, cfg.widths, strict=True)):
            stages.append(Stage(block, cin, width, depth, 1 if i == 0 else 2, cfg))
            cin = stages[-1].out_channels
        self.stages = nn.ModuleList(stages)
        if cfg.fusion:
            self.fusion = Fusion([s.out_channels for s in stages[1:]], cfg.fusion_width, cfg.spatial_attention)
            n_features = self.fusion.out_features
        else:
            self.fusion = None
            n_features = cin
        self.heads = nn.ModuleDict({name: AttributeHead(n_features, cfg.head_width, size, cfg.drop)
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

    def forward_features(self, image: torch.Tensor) -> torch.Tensor:
        """image: [B, 3, S, S] RGB in [0, 1] -> [B, num_features]."""
        x = self.stem((image - self.mean.to(image.dtype)) / self.std.to(image.dtype))
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return self.fusion(feats[1:]) if self.fusion is not None else x.mean((2, 3))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """[B, num_features] -> [B, P] parameter vector (layout `param_layout`)."""
        return torch.cat([head(features) for head in self.heads.values()], dim=1)

    def forward(self, image: torch.Tensor) -> FaceParams:
        self.check_input(image)
        raw = self.forward_head(self.forward_features(image))
        return decode_params(raw.float(), self.cfg)


# --- factory, checkpoints, ImageNet initialisation ---------------------------------------------------------------

def create_network(name: str = DEFAULT_VARIANT, **overrides) -> MLANet:
    """A network of a named variant, with config fields overridden (e.g. fusion=False)."""
    if name not in VARIANTS:
        raise MlafaceError(f"unknown network variant {name!r}; choose from {', '.join(VARIANTS)}")
    unknown = set(overrides) - {f.name for f in fields(NetworkConfig)}
    if unknown:
        raise MlafaceError(f"unknown network config keys: {', '.join(sorted(unknown))}")
    return MLANet(replace(VARIANTS[name], **overrides))


def save_checkpoint(path: str | Path, net: MLANet, **extra) -> Path:
    """Weights and config (plain types only, so it loads with weights_only=True), written atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(net.cfg).items()}
    with atomic_path(path) as tmp:
        torch.save({"format": "mlaface.network", "format_version": 1, "config": cfg,
                    "state_dict": net.state_dict(), **extra}, tmp)
    return path


def load_network(path: str | Path, map_location: str = "cpu") -> MLANet:
    """Rebuild a network from a checkpoint of save_checkpoint (loaded with weights_only=True)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise MlafaceError(f"{path}: network weights not found") from None
    except Exception as e:  # torch raises many types for a damaged file
        raise MlafaceError(f"{path}: not a readable network checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != "mlaface.network":
        raise MlafaceError(f"{path}: not an mlaface network checkpoint")
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()}
    net = MLANet(NetworkConfig(**cfg))
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MlafaceError(f"{path}: weights do not fit the network they claim ({e})") from None
    return net


def complexity(net: MLANet) -> tuple[int, int]:
    """(parameters, multiply-adds) for one image of the configured size; convolutions and linear layers."""
    macs = 0

    def count(module: nn.Module, _inputs, output: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            macs += output.numel() * k
        elif isinstance(module, nn.Linear):
            macs += output.numel() * module.in_features

    hooks = [m.register_forward_hook(count) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = net.training
    try:
        net.eval()
        with torch.no_grad():
            s = net.cfg.image_size
            net(torch.zeros(1, 3, s, s))
    finally:
        for h in hooks:
            h.remove()
        net.train(was_training)
    return sum(p.numel() for p in net.parameters()), macs


_TORCHVISION_NAMES = [  # torchvision ResNet state-dict names -> ours
    (r"^conv1\.weight$", "stem.0.0.weight"),
    (r"^bn1\.", "stem.0.1."),
    (r"^layer(\d)\.(\d+)\.conv(\d)\.weight$", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.conv{m[3]}.0.weight"),
    (r"^layer(\d)\.(\d+)\.bn(\d)\.(.+)$", lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.conv{m[3]}.1.{m[4]}"),
    (r"^layer(\d)\.(\d+)\.downsample\.(\d)\.(.+)$",
     lambda m: f"stages.{int(m[1]) - 1}.blocks.{m[2]}.downsample.{m[3]}.{m[4]}"),
]
IMAGENET_FILES = {"mlanet_r50": "resnet50-*.pth", "mlanet_r18": "resnet18-*.pth"}


def torchvision_to_ours(name: str) -> str | None:
    """Map one torchvision ResNet weight name to our backbone's, None for its classifier (fc)."""
    for pattern, target in _TORCHVISION_NAMES:
        m = re.match(pattern, name)
        if m:
            return target(m) if callable(target) else re.sub(pattern, target, name)
    return None


def load_imagenet_backbone(net: MLANet, weights: str | Path | None = None) -> Path | None:
    """Initialise the backbone from torchvision's ImageNet ResNet weights: `weights`, or the file torchvision keeps
    in the torch hub cache. Never downloads; returns the file used, or None when there is none."""
    if weights is None:
        pattern = IMAGENET_FILES.get(net.cfg.name)
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        hits = sorted(folder.glob(pattern)) if pattern and folder.is_dir() else []
        if not hits:
            return None
        weights = hits[-1]
    state = torch.load(weights, map_location="cpu", weights_only=True)
    mapped = {torchvision_to_ours(k): v for k, v in state.items() if torchvision_to_ours(k)}
    own = net.state_dict()
    bad = [k for k, v in mapped.items() if k not in own or own[k].shape != v.shape]
    if bad or not mapped:
        raise MlafaceError(f"{weights}: not ImageNet ResNet weights for {net.cfg.name} ({len(bad)} mismatches)")
    net.load_state_dict(mapped, strict=False)
    return Path(weights)


def describe(cfg: NetworkConfig) -> str:
    """One line: variant, parameters and multiply-adds."""
    params, macs = complexity(MLANet(cfg))
    return f"{cfg.name}: {params / 1e6:.1f} M parameters, {macs / 1e9:.2f} G multiply-adds at {cfg.image_size}px"
