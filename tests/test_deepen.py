"""Growing a network for a chained run (training/deepen.py): more blocks per stage or a points head added, the file's
outputs kept."""

from __future__ import annotations

import pytest
import torch

from backend.io.errors import MlafaceError
from backend.network.decode import crop_points
from backend.network.mlanet import create_network
from training.deepen import deepen_from, deepens


@pytest.mark.parametrize("name", ["mlanet_tiny", "mlanet_dw"])
def test_deeper_network_starts_with_the_smaller_ones_outputs(name):
    torch.manual_seed(0)
    small = create_network(name)
    for m in small.modules():  # weights and statistics as a trained file would have them, not the init's
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.normal_(m.bias, std=0.1)
            m.running_mean.normal_(std=0.1)
    for head in small.heads.values():
        torch.nn.init.normal_(head.fc2.weight, std=0.05)
    depths = tuple(d + i % 2 + 1 for i, d in enumerate(small.cfg.depths))
    big = create_network(name, depths=depths)
    assert deepens(small, big) and not deepens(big, small)
    assert deepen_from(big, small) == sum(depths) - sum(small.cfg.depths)
    S = small.cfg.image_size
    x = torch.rand(3, 3, S, S)
    small.eval(), big.eval()
    with torch.no_grad():
        torch.testing.assert_close(big.forward_raw(x), small.forward_raw(x))
    big.train()
    big.forward_raw(x).square().sum().backward()
    added = list(big.stages[0].blocks)[-1]
    last_bn = [m for m in added.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    assert last_bn.weight.grad.abs().sum() > 0  # the identity block can learn to become something else


def test_a_points_head_is_added_to_a_network_without_one():
    torch.manual_seed(0)
    small = create_network("mlanet_dw", points=False)
    for head in small.heads.values():
        torch.nn.init.normal_(head.fc2.weight, std=0.05)
    big = create_network("mlanet_dw", depths=(1, 2, 4, 2))
    assert big.cfg.points and deepens(small, big) and not deepens(big, small)
    assert deepen_from(big, small) == 1
    x = torch.rand(2, 3, 112, 112)
    small.eval(), big.eval()
    with torch.no_grad():
        raw = big.forward_raw(x)
        torch.testing.assert_close(raw[:, :-136], small.forward_raw(x))  # the points head's columns come last
    big.train()
    crop_points(big.forward_raw(x), big.cfg).sum().backward()
    assert big.heads["points"].fc2.weight.grad.abs().sum() > 0


def test_only_more_blocks_may_differ():
    small = create_network("mlanet_tiny")
    for other in (create_network("mlanet_tiny", widths=(16, 32, 64, 256), depths=(2, 1, 1, 1)),
                  create_network("mlanet_tiny", fusion=False, depths=(2, 1, 1, 1))):
        assert not deepens(small, other)
        with pytest.raises(MlafaceError, match="does not grow into"):
            deepen_from(other, small)
