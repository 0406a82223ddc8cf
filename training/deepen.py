"""Start a larger network from a smaller one's weights: a chained run that grows its network instead of starting
over. Two ways to grow, alone or together:
- deeper: the file's blocks fill the first blocks of each stage; each extra block, appended where a stage's shape
  no longer changes (stride 1, as many channels in as out), is residual and starts as the identity (its last
  BatchNorm's scale at zero, its shift at zero from the start, so the block adds nothing until training moves them);
- a points head (NetworkConfig.points) added: it starts as new heads do, the rest is the file's.
The grown network's other outputs equal the file's on every input before the first step."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from backend.io.errors import MlafaceError
from backend.network.mlanet import MLANet


def deepens(smaller: MLANet, net: MLANet) -> bool:
    """Whether `net` is `smaller` with the same or more blocks in every stage, perhaps a points head added, and
    nothing else changed."""
    a, b = smaller.cfg, net.cfg
    return (len(a.depths) == len(b.depths) and all(x <= y for x, y in zip(a.depths, b.depths, strict=True))
            and b.points >= a.points and replace(a, depths=b.depths, points=b.points) == b)


@torch.no_grad()
def deepen_from(net: MLANet, smaller: MLANet) -> int:
    """Load `smaller`'s weights into `net` (deepens(smaller, net)) and make the extra blocks identities; returns
    how many blocks were added."""
    if not deepens(smaller, net):
        raise MlafaceError(f"a {smaller.cfg.name} network with stage depths {smaller.cfg.depths} does not grow into "
                           f"{net.cfg.name} with depths {net.cfg.depths} (only more blocks per stage and an added "
                           f"points head may differ)")
    net.load_state_dict({**net.state_dict(), **smaller.state_dict()})
    added = 0
    for stage, old_depth in zip(net.stages, smaller.cfg.depths, strict=True):
        for block in list(stage.blocks)[old_depth:]:
            last = [m for m in block.modules() if isinstance(m, nn.BatchNorm2d)][-1]
            last.weight.zero_()
            added += 1
    return added
