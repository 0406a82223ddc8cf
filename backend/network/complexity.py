"""How big a network is: parameters and multiply-adds per image."""

from __future__ import annotations

import torch
from torch import nn

from .config import NetworkConfig
from .mlanet import MLANet


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



def describe(cfg: NetworkConfig) -> str:
    """One line: variant, parameters and multiply-adds."""
    params, macs = complexity(MLANet(cfg))
    return f"{cfg.name}: {params / 1e6:.1f} M parameters, {macs / 1e9:.2f} G multiply-adds at {cfg.image_size}px"
