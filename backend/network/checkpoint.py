"""Network files: mlaface checkpoints (weights and config, loadable with weights_only=True) and torchvision's
ImageNet ResNet weights for the backbone (from the torch hub cache; never downloaded)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import torch

from ..io.atomic import atomic_path
from ..io.errors import MlafaceError
from .config import NetworkConfig
from .mlanet import MLANet


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
    net = MLANet(NetworkConfig(**ckpt["config"]))
    try:
        net.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        raise MlafaceError(f"{path}: weights do not fit the network they claim ({e})") from None
    return net



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
