"""Training data and losses: the albedo model, EM-PCA, synthetic faces, augmented AFLW crops, losses, configs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import SHARED_DATA

from backend.detect.align import IBUG68_FLIP
from backend.io.errors import MlafaceError
from backend.model.albedo_model import AlbedoModel
from backend.network.mlanet import create_network
from training.aflw_crops import AFLW21_FLIP
from training.config import load_config
from training.losses import LossWeights, confidence_loss, landmark_loss, total
from training.real_data import RealFaces, balanced_indices, batch_indices
from training.texture_model import em_pca

CROPS = SHARED_DATA / "aflw-crops"


def test_em_pca_fills_missing_values():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(60, 5, generator=g))[0].T  # [5, 60]
    x = torch.randn(400, 5, generator=g) * torch.tensor([5.0, 4, 3, 2, 1]) @ basis + 0.5
    w = (torch.rand(x.shape, generator=g) > 0.4).float()  # 40% of the values unseen
    mean, found, sigma = em_pca(x, w, 5, iterations=30)
    assert torch.allclose(mean, torch.full((60,), 0.5), atol=0.3)
    # the found subspace is the true one
    assert torch.linalg.matrix_norm(found @ basis.T, ord=2) > 0.99
    assert torch.linalg.svdvals(found @ basis.T).min() > 0.95
    assert sigma[0] > sigma[-1]


@pytest.fixture(scope="module")
def face(real_model_path):
    from backend.model.face_model import FaceModel

    return FaceModel.load(real_model_path).face_subset()


def test_synthetic_faces(face):
    from training.synthetic import SyntheticFaces

    synth = SyntheticFaces(face, AlbedoModel.load(), 64)
    a = synth.sample(6, torch.Generator().manual_seed(3))
    b = synth.sample(6, torch.Generator().manual_seed(3))
    assert torch.equal(a["image"], b["image"])  # a pure function of the seed
    assert a["image"].shape == (6, 3, 64, 64) and 0 <= a["image"].min() and a["image"].max() <= 1
    assert ((0 <= a["expression"]) & (a["expression"] <= 1)).all()
    # framing: the 68-point box is centred at about 1 / sqrt(2) of the crop (jitter 8% size, 4% shift)
    lo, hi = a["lm68"].min(1).values, a["lm68"].max(1).values
    side = (hi - lo).amax(1) / 64
    assert ((side > 0.6) & (side < 0.8)).all(), side
    assert ((lo + hi) / 2 - 31.5).abs().max() < 0.06 * 64
    # the truth is consistent: rotation is a rotation, landmarks are the projected vertices
    eye = torch.eye(3).expand(6, 3, 3)
    assert torch.allclose(a["rotation"] @ a["rotation"].transpose(1, 2), eye, atol=1e-5)
    # co-activation: blinks fire on both eyes together far more often than on one
    many = synth.sample(400, torch.Generator().manual_seed(1))["expression"]
    names = face.expression_names
    left, right = many[:, names.index("eyeBlinkLeft")] > 0.1, many[:, names.index("eyeBlinkRight")] > 0.1
    assert (left & right).sum() > 2 * (left ^ right).sum()


def test_synthetic_landmarks_sit_on_the_rendered_face(face):
    from training.synthetic import SyntheticFaces

    synth = SyntheticFaces(face, AlbedoModel.load(), 96)
    s = synth.sample(4, torch.Generator().manual_seed(5))
    _, mask = synth.renderer.render(s["verts_cam"], s["focal"], synth.albedo(s["texture"]), s["sh"], 96)
    nose = s["lm68"][:, 30].round().long()  # the nose tip is never hidden
    assert all(mask[b, nose[b, 1], nose[b, 0]] for b in range(4))


def _crops_with_dots(n=4):
    """Grey crops with a bright dot on each visible point, and the points."""
    g = np.random.default_rng(0)
    pts = g.uniform(30, 90, size=(n, 21, 2)).astype(np.float32)
    pts[:, 12] = np.nan  # a hidden ear
    images = np.full((n, 120, 120, 3), 60, np.uint8)
    for i in range(n):
        x, y = np.round(pts[i, 14]).astype(int)  # nose centre
        images[i, y - 1:y + 2, x - 1:x + 2] = 255
    return images, pts


def test_augmentation_moves_points_with_the_image():
    images, pts = _crops_with_dots()
    real = RealFaces(images, pts, 96)
    g = torch.Generator().manual_seed(2)
    b = real.sample(torch.arange(4), g)
    for i in range(4):
        img = b["image"][i].mean(0)
        peak = torch.nonzero(img == img.max())[0].flip(0).float()  # (x, y)
        # the nose centre stays index 14 when mirrored (it is on the midline)
        assert (peak - b["lm21"][i, 14]).norm() < 1.6, (peak, b["lm21"][i, 14])
        assert not b["vis21"][i, 12] or not b["vis21"][i, 16]  # the hidden ear stays hidden (maybe mirrored)
    assert list(AFLW21_FLIP[AFLW21_FLIP]) == list(range(21))


def test_68_point_labels_move_with_the_image():
    """The teacher's labels ride the same augmentation: the nose tip (iBUG 30, on the midline) stays on the dot, and
    a mirrored crop's weights swap sides with its points."""
    images, pts = _crops_with_dots()
    labels = np.random.default_rng(1).uniform(30, 90, size=(4, 68, 2)).astype(np.float32)
    labels[:, 30] = pts[:, 14]
    weights = np.tile(np.linspace(0.1, 1.0, 68, dtype=np.float32), (4, 1))
    real = RealFaces(images, pts, 96, labels68=(labels, weights))
    b = real.sample(torch.arange(4), torch.Generator().manual_seed(2))
    for i in range(4):
        img = b["image"][i].mean(0)
        peak = torch.nonzero(img == img.max())[0].flip(0).float()
        assert (peak - b["lm68"][i, 30]).norm() < 1.6
        mirrored = not torch.allclose(b["w68"][i], torch.from_numpy(weights[i]))
        assert torch.allclose(b["w68"][i], torch.from_numpy(weights[i][IBUG68_FLIP] if mirrored else weights[i]))
    with pytest.raises(MlafaceError, match="3 68-point labels for 4 crops"):
        RealFaces(images, pts, 96, labels68=(labels[:3], weights[:3]))


def test_batches_are_sharded_and_cover_an_epoch():
    a = batch_indices(100, 0, 10, seed=1, rank=0, world=2)
    b = batch_indices(100, 0, 10, seed=1, rank=1, world=2)
    assert not set(a.tolist()) & set(b.tolist())
    epoch = torch.cat([batch_indices(100, s, 10, seed=1) for s in range(10)])
    assert sorted(epoch.tolist()) == list(range(100))
    assert not torch.equal(batch_indices(100, 10, 10, seed=1), batch_indices(100, 0, 10, seed=1))


def test_landmark_loss_ignores_hidden_points():
    target = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    vis = torch.tensor([[True, True, False]])
    assert math.isclose(float(landmark_loss(pred, target, vis, 10)), 0.25)
    terms = {"landmark_real": torch.tensor(2.0), "prior_identity": torch.tensor(3.0)}
    w = LossWeights(landmark=0.5, prior_identity=0.1)
    assert math.isclose(float(total(terms, w)), 1.3, rel_tol=1e-6)


def test_config_rejects_unknown_keys(tmp_path):
    cfg = load_config("tiny_smoke", {"run.steps": 2})
    assert cfg.run.steps == 2 and cfg.network["variant"] == "mlanet_tiny"
    bad = tmp_path / "bad.toml"
    bad.write_text("[run]\nstep = 3\n")
    with pytest.raises(MlafaceError, match="unknown keys step"):
        load_config(bad)
    with pytest.raises(MlafaceError, match="no such training config"):
        load_config("nope")
    (tmp_path / "broken.toml").write_text("[run\n")
    with pytest.raises(MlafaceError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")


def test_rigid_alignment_and_3d_error():
    from scipy.spatial.transform import Rotation

    from training.aflw2000 import nme_3d, rigid_align

    g = np.random.default_rng(0)
    gt = g.normal(size=(68, 3)) * 50
    moved = gt @ Rotation.from_euler("xyz", [20, -40, 10], degrees=True).as_matrix().T + [5, -3, 9]
    assert np.allclose(rigid_align(moved, gt), gt, atol=1e-9)
    assert nme_3d(moved, gt, gt[:, :2]) < 1e-9
    mirrored = gt * [1, 1, -1]  # a reflection is not a rigid motion: it must stay an error
    assert nme_3d(mirrored, gt, gt[:, :2]) > 0.05


def test_config_rejects_values_out_of_range():
    with pytest.raises(MlafaceError, match=r"\[run\] steps must be 1 or more, got 0"):
        load_config("tiny_smoke", {"run.steps": 0})
    with pytest.raises(MlafaceError, match="synthetic_share must be between 0 and 1, got 1.5"):
        load_config("tiny_smoke", {"run.synthetic_share": 1.5})
    with pytest.raises(MlafaceError, match="bad network config: image_size 8"):
        create_network("mlanet_tiny", image_size=8)


def test_non_finite_loss_stops_with_its_step_and_terms():
    """The guard keeps the first bad step on the device (no sync per step) and raises when checked."""
    from training.train import FiniteGuard, NonFiniteLoss

    guard = FiniteGuard(torch.device("cpu"))
    for step in range(3):
        guard.watch(step, {"landmark": torch.tensor(0.5), "photometric": torch.tensor(0.2)})
    guard.check()
    guard.watch(3, {"landmark": torch.tensor(0.4), "photometric": torch.tensor(float("nan"))})
    guard.watch(4, {"landmark": torch.tensor(float("inf")), "photometric": torch.tensor(0.1)})
    with pytest.raises(NonFiniteLoss, match=r"step 3: the loss is not finite \(landmark=0.4, photometric=nan\)"):
        guard.check()


def test_balanced_batches_draw_each_group_equally():
    groups = [torch.arange(0, 90), torch.arange(90, 100), torch.arange(100, 130)]  # 90 frontal, 10 profile
    a = balanced_indices(groups, 3, 9, seed=1)
    assert torch.equal(a, balanced_indices(groups, 3, 9, seed=1))  # a pure function of the step
    assert [int(((a >= g[0]) & (a <= g[-1])).sum()) for g in groups] == [3, 3, 3]
    seen = torch.cat([balanced_indices(groups, s, 9, seed=1) for s in range(3)])
    few = seen[(seen >= 90) & (seen < 100)]
    assert len(set(few.tolist())) == len(few) == 9  # an epoch of the small group (less 10 % 3), no repeats


def test_confidence_loss_is_least_at_the_true_error_and_leaves_the_points_alone():
    target = torch.zeros(1, 2, 2)
    pred = torch.tensor([[[3.0, 4.0], [0.0, 1.0]]], requires_grad=True)  # errors 5 and 1 pixels of 100
    sigma = torch.tensor([[0.05, 0.01]], requires_grad=True)
    loss = confidence_loss(sigma, pred, target, torch.ones(1, 2), 100)
    assert float(loss.detach()) < 1e-6
    worse = [confidence_loss(sigma * f, pred, target, torch.ones(1, 2), 100) for f in (0.5, 2.0)]
    assert all(float(w.detach()) > 0.1 for w in worse)
    worse[1].backward()
    assert pred.grad is None and sigma.grad.abs().sum() > 0


def test_synthetic_pool_gives_what_rendering_gives(face):
    from training.synthetic import SyntheticFaces, SyntheticPool

    synth = SyntheticFaces(face, AlbedoModel.load(), 48)
    pool = SyntheticPool(synth, 10, seed=2, chunk=4)
    assert len(pool) == 10 and pool.data["image"].dtype == torch.uint8
    a = pool.sample(5, torch.Generator().manual_seed(0))
    fresh = synth.sample(2, torch.Generator().manual_seed(0))
    assert set(a) == set(fresh)
    assert a["image"].shape == (5, 3, 48, 48) and a["image"].max() <= 1
    from backend.render.camera import to_landmark_pixels

    lm = to_landmark_pixels(face.landmarks(a["verts_cam"]), a["focal"], (48, 48))
    torch.testing.assert_close(lm, a["lm68"], atol=1e-3, rtol=0)  # vertices rebuilt from the parameters
    again = SyntheticPool(synth, 10, seed=2, chunk=4)
    assert torch.equal(again.data["image"], pool.data["image"])  # a pure function of the seed


def test_every_shipped_config_loads_and_names_a_variant():
    from backend.network.config import VARIANTS
    from training.config import CONFIG_DIR

    names = sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
    assert {"mlanet_dw", "mlanet_dw_gpu", "mlanet_r18_labels"} <= set(names)
    for name in names:
        assert load_config(name).network["variant"] in VARIANTS, name
    with pytest.raises(MlafaceError, match="synthetic_pool must be 0"):
        load_config("mlanet_dw", {"run.synthetic_pool": -1})
