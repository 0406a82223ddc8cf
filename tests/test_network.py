"""MLANet: shapes and ranges per variant, gradients, ablations, checkpoints, ImageNet initialisation, bad input."""

from __future__ import annotations

import re

import pytest
import torch

from backend.io.errors import MlafaceError
from backend.model.pose import rotation_from_6d
from backend.model.store import PACKAGED_WEIGHTS, find_network_weights
from backend.network.checkpoint import load_imagenet_backbone, load_network, save_checkpoint, torchvision_to_ours
from backend.network.complexity import complexity
from backend.network.config import VARIANTS
from backend.network.decode import (
    SIGMA_AT_ZERO,
    crop_points,
    decode_params,
    landmark_sigma,
    param_layout,
    points_head_output,
)
from backend.network.mlanet import create_network


@pytest.mark.parametrize("name", list(VARIANTS))
def test_output_shapes_and_ranges(name):
    net = create_network(name).eval()
    s = net.cfg.image_size
    with torch.no_grad():
        x = torch.rand(2, 3, s, s)
        p, raw = net(x), net.forward_raw(x)
    assert p.identity.shape == (2, 100) and p.expression.shape == (2, 53) and p.texture.shape == (2, 80)
    assert p.rotation.shape == (2, 3, 3) and p.translation.shape == (2, 3) and p.focal.shape == (2,)
    assert p.sh.shape == (2, 27) and raw.shape == (2, sum(param_layout(net.cfg).values()))
    assert ((p.expression >= 0) & (p.expression <= 1)).all()
    assert (p.translation[:, 2] < 0).all() and (p.focal > 0).all()  # in front of the camera
    eye = torch.eye(3).expand(2, 3, 3)
    torch.testing.assert_close(p.rotation @ p.rotation.transpose(1, 2), eye, atol=1e-5, rtol=0)


def test_heads_start_at_the_mean_face():
    p = decode_params(torch.zeros(1, sum(param_layout(VARIANTS["mlanet_tiny"]).values())), VARIANTS["mlanet_tiny"])
    assert torch.equal(p.rotation[0], torch.eye(3)) and p.translation[0].tolist() == [0.0, 0.0, -1.0]
    assert p.identity.abs().max() == 0 and p.expression.max() < 0.02


def test_rotation_from_6d_is_a_rotation():
    r = rotation_from_6d(torch.randn(50, 6, dtype=torch.float64))
    torch.testing.assert_close(r @ r.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(50, 3, 3))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(50, dtype=torch.float64))


def test_every_parameter_receives_a_gradient():
    torch.manual_seed(0)  # from another test's random state a channel attention's ReLUs can all be off
    net = create_network("mlanet_tiny", drop=0.1)
    for head in net.heads.values():  # trained heads are not zero: let the gradient through to the backbone
        torch.nn.init.normal_(head.fc2.weight, std=0.1)
    x = torch.rand(3, 3, 64, 64)
    p = net(x)
    (net.forward_raw(x).square().sum() + p.rotation.sum() + p.expression.sum()).backward()
    missing = [n for n, w in net.named_parameters() if w.grad is None or not w.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"


@pytest.mark.parametrize("off", [{"channel_attention": False}, {"spatial_attention": False}, {"fusion": False},
                                 {"channel_attention": False, "spatial_attention": False, "fusion": False}])
def test_ablations_run(off):
    net = create_network("mlanet_tiny", **off)
    kinds = {type(m).__name__ for m in net.modules()}
    assert ("ChannelAttention" in kinds) == off.get("channel_attention", True)
    assert ("SpatialAttention" in kinds) == off.get("spatial_attention", True)
    assert (net.fusion is not None) == off.get("fusion", True)
    x = torch.rand(1, 3, 64, 64)
    assert net(x).identity.shape == (1, 100) and torch.isfinite(net.forward_raw(x)).all()


def test_checkpoint_round_trip(tmp_path):
    net = create_network("mlanet_tiny", n_texture=12).eval()
    for w in net.parameters():
        torch.nn.init.normal_(w, std=0.05)
    path = save_checkpoint(tmp_path / "net.pt", net, step=7)
    ckpt = torch.load(path, weights_only=True)  # plain types only
    assert ckpt["step"] == 7 and ckpt["config"]["n_texture"] == 12
    back = load_network(path).eval()
    assert back.cfg == net.cfg
    for (k, a), (_, b) in zip(net.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(net.forward_raw(x), back.forward_raw(x))
    assert [p.name for p in tmp_path.iterdir()] == ["net.pt"]


def test_bad_input_and_files(tmp_path):
    net = create_network("mlanet_tiny")
    with pytest.raises(MlafaceError, match="takes 64x64 crops, got 32x32"):
        net(torch.rand(1, 3, 32, 32))
    with pytest.raises(MlafaceError, match="3 colour channels"):
        net(torch.rand(1, 1, 64, 64))
    bad = torch.rand(1, 3, 64, 64)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(MlafaceError, match="NaN or infinite"):
        net(bad)
    with pytest.raises(MlafaceError, match="unknown network variant 'resnet9000'"):
        create_network("resnet9000")
    with pytest.raises(MlafaceError, match="unknown network config keys: colour"):
        create_network("mlanet_tiny", colour=True)
    with pytest.raises(MlafaceError, match="network weights not found"):
        load_network(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MlafaceError, match="junk.pt: not a readable network checkpoint"):
        load_network(tmp_path / "junk.pt")
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(MlafaceError, match="not an mlaface network checkpoint"):
        load_network(tmp_path / "other.pt")


def torchvision_resnet_names(depths, bottleneck):
    """The state-dict names of torchvision's ResNet-18/50 (conv1, bn1, layerN.i.convK/bnK/downsample, fc)."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    names = ["conv1.weight"] + [f"bn1.{k}" for k in bn] + ["fc.weight", "fc.bias"]
    for layer, depth in enumerate(depths, start=1):
        for i in range(depth):
            for k in range(1, 4 if bottleneck else 3):
                names += [f"layer{layer}.{i}.conv{k}.weight"] + [f"layer{layer}.{i}.bn{k}.{b}" for b in bn]
            if i == 0 and (layer > 1 or bottleneck):
                names += [f"layer{layer}.0.downsample.0.weight"] + [f"layer{layer}.0.downsample.1.{b}" for b in bn]
    return names


@pytest.mark.parametrize("name", ["mlanet_r18", "mlanet_r50"])
def test_imagenet_weights_from_the_torch_cache(name, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    net = create_network(name)
    assert load_imagenet_backbone(net) is None  # nothing cached: nothing loaded, nothing downloaded
    own = net.state_dict()
    names = torchvision_resnet_names(net.cfg.depths, net.cfg.block == "bottleneck")
    fake = {}
    for n in names:
        ours = torchvision_to_ours(n)
        if ours is None:
            assert n.startswith("fc.")
            continue
        assert ours in own, f"{n} -> {ours} is not a weight of ours"
        fake[n] = torch.randn_like(own[ours].float()).to(own[ours].dtype) if own[ours].is_floating_point() \
            else own[ours] + 3
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    file = tmp_path / "hub" / "checkpoints" / f"{'resnet18' if name.endswith('18') else 'resnet50'}-0123abcd.pth"
    torch.save(fake, file)
    assert load_imagenet_backbone(net) == file
    loaded = net.state_dict()
    backbone = [k for k in own if re.match(r"^(stem|stages\.\d\.blocks)\.", k)]
    assert len(backbone) == len(fake)  # every backbone weight has a torchvision counterpart
    for n, v in fake.items():
        assert torch.equal(loaded[torchvision_to_ours(n)], v)


def test_complexity():
    bare = create_network("mlanet_r50", channel_attention=False, spatial_attention=False, fusion=False)
    params, macs = complexity(bare)
    assert 4.0e9 < macs < 4.2e9  # ResNet-50's well-known 4.1 G multiply-adds (plus the small heads)
    assert params == sum(w.numel() for w in bare.parameters())
    assert complexity(create_network("mlanet_r50"))[1] < 1.25 * macs  # attention and fusion cost < 25% more


def test_finding_weights(tmp_path, monkeypatch):
    assert find_network_weights("mlanet_r50") is None  # none shipped, and this test's cache is empty
    monkeypatch.setenv("MLAFACE_WEIGHTS", str(tmp_path / "gone.pt"))
    with pytest.raises(MlafaceError, match="gone.pt: network weights not found"):
        find_network_weights("mlanet_r50")
    net = create_network("mlanet_tiny")
    path = save_checkpoint(tmp_path / "mine.pt", net)
    monkeypatch.setenv("MLAFACE_WEIGHTS", str(path))
    assert find_network_weights("mlanet_r50") == path
    monkeypatch.delenv("MLAFACE_WEIGHTS")
    shipped = PACKAGED_WEIGHTS / "mlanet_dw.pt"
    assert find_network_weights(None) == (shipped if shipped.is_file() else None)  # the shipped default (dw)
    cached = save_checkpoint(tmp_path / "xdg-cache" / "mlaface" / "models" / "mlanet_r50.pt", net)
    assert find_network_weights("mlanet_r50") == cached
    assert find_network_weights(None) == cached  # the most accurate variant with weights wins


def test_zero_prediction_frames_the_mean_face_like_the_aligned_crop(real_model_data):
    """The network's starting point (zero parameter vector) projects the mean face's landmarks onto the
    canonical crop template (backend.detect.align) within a few pixels of 224: heads start from a sensible face."""
    import numpy as np

    from backend.detect.align import TEMPLATE_68
    from backend.model.face_model import FaceModel
    from backend.render.camera import to_landmark_pixels

    cfg = VARIANTS["mlanet_r50"]
    p = decode_params(torch.zeros(1, sum(param_layout(cfg).values())), cfg)
    model = FaceModel.from_data(real_model_data)
    pixels = to_landmark_pixels(model.landmarks(p.camera_vertices(model)), p.focal, (224, 224))[0].numpy()
    assert np.abs(pixels - (TEMPLATE_68 * 224 - 0.5)).mean() < 6.0


def test_cpu_variant_predicts_its_points_and_their_confidence(tmp_path):
    net = create_network("mlanet_dw")
    kinds = {type(m).__name__ for m in net.modules()}
    assert {"DepthwiseSeparable", "ChannelAttention", "SpatialAttention", "Fusion"} <= kinds
    assert net.cfg.lka_kernels == (3, 5, 2) and {"landmark_sigma", "points"} <= set(param_layout(net.cfg))
    S = net.cfg.image_size
    x = torch.rand(2, 3, S, S)
    p, points, sigma = net.predict(x)
    assert p.identity.shape == (2, 100) and sigma.shape == (2, 68) and points.shape == (2, 68, 2)
    torch.testing.assert_close(sigma, torch.full((2, 68), SIGMA_AT_ZERO * S))  # zero-initialised heads
    torch.testing.assert_close(points, torch.full((2, 68, 2), (S - 1) / 2))  # the crop's centre pixel
    layout = param_layout(net.cfg)
    raw = torch.zeros(1, sum(layout.values()))
    raw[:, -136:] = points_head_output(torch.arange(136.0).view(68, 2), net.cfg)  # the points head's columns last
    torch.testing.assert_close(crop_points(raw, net.cfg)[0], torch.arange(136.0).view(68, 2))  # the inverse
    for head in net.heads.values():
        torch.nn.init.normal_(head.fc2.weight, std=0.1)
    raw = net.forward_raw(x)
    landmark_sigma(raw, net.cfg).sum().backward()  # the confidence reaches the body
    assert net.heads["landmark_sigma"].fc2.weight.grad.abs().sum() > 0
    assert net.stem[0][0].weight.grad.abs().sum() > 0
    assert net.heads["identity"].fc2.weight.grad.abs().sum() == 0  # and no other head
    net.zero_grad()
    crop_points(net.forward_raw(x), net.cfg)[:, 30, 0].sum().backward()  # the nose tip's x moves its own column
    grad = net.heads["points"].fc2.weight.grad.abs().sum(1)
    assert grad[60] > 0 and grad[:60].sum() == 0 and grad[61:].sum() == 0
    assert net.heads["landmark_sigma"].fc2.weight.grad.abs().sum() == 0
    net.eval()
    back = load_network(save_checkpoint(tmp_path / "dw.pt", net)).eval()
    assert back.cfg == net.cfg  # tuples survive the plain-types file
    with torch.no_grad():
        for a, b in zip(back.predict(x)[1:], net.predict(x)[1:], strict=True):
            torch.testing.assert_close(a, b)
    assert create_network("mlanet_tiny").predict(torch.rand(1, 3, 64, 64))[1:] == (None, None)
