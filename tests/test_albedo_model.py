"""The albedo model: the shipped file, its fit to partly seen maps, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.io.errors import MlafaceError
from backend.model.albedo_model import AlbedoModel, write_albedo_model


def test_shipped_albedo_model_is_skin():
    albedo = AlbedoModel.load()
    assert 10 <= albedo.n_components <= 200
    assert "AFLW" in albedo.source
    mean = albedo(torch.zeros(1, albedo.n_components))[0]
    cheek = mean[:, int(0.55 * albedo.size), int(0.3 * albedo.size)]  # a texel on the cheek
    assert cheek[0] > cheek[1] > cheek[2] > 0.02, cheek  # skin: red over green over blue, linear RGB
    # mirror-symmetric (built from mirrored faces; the tile is symmetric in u)
    assert torch.allclose(mean, mean.flip(-1), atol=0.02)


def test_fit_predicts_what_was_not_seen():
    albedo = AlbedoModel.load()
    g = torch.Generator().manual_seed(0)
    truth_coeffs = torch.zeros(albedo.n_components)
    truth_coeffs[:20] = torch.randn(20, generator=g)
    truth = albedo(truth_coeffs[None])[0]
    weight = torch.ones(albedo.size, albedo.size)
    weight[:, : albedo.size // 2] = 0  # the subject's right half unseen
    weight[: albedo.size // 3] = 0  # and the forehead
    found = albedo(albedo.fit(truth, weight)[None])[0]
    hidden = weight == 0
    err_fit = (found - truth).abs()[:, hidden].mean()
    err_mean = (albedo.mean - truth).abs()[:, hidden].mean()
    assert err_fit < 0.35 * err_mean, (err_fit, err_mean)
    # nothing seen: the mean
    assert torch.allclose(albedo.fit(truth, torch.zeros_like(weight)), torch.zeros(albedo.n_components), atol=1e-5)


def test_bad_albedo_files(tmp_path):
    with pytest.raises(MlafaceError, match="not found"):
        AlbedoModel.load(tmp_path / "none.npz")
    bad = write_albedo_model(tmp_path / "bad.npz", np.zeros((3, 8, 8)), np.zeros((2, 3, 4, 4)), np.ones(2),
                             np.ones(2), "test")
    with pytest.raises(MlafaceError, match="do not fit together"):
        AlbedoModel.load(bad)
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(MlafaceError, match="not a readable albedo model"):
        AlbedoModel.load(tmp_path / "junk.npz")
