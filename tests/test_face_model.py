"""The real ICT-FaceKit model: conversion from ../shared/data, geometry of shapes and landmarks, FaceModel."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FACEKIT_ARCHIVE

from backend.io.errors import MlafaceError
from backend.model.face_model import FaceModel
from backend.model.store import ICT_FACEKIT_DIGEST


def test_info_of_installed_model(real_model_path):
    r = subprocess.run([str(Path(sys.executable).parent / "mlaface"), "model", "info", "--model",
                        str(real_model_path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "vertices:       26,719" in r.stdout
    assert "identity modes: 100" in r.stdout
    assert "expressions:    53" in r.stdout


def test_pinned_digest_matches_upstream_files(real_model_data):
    """The checksum `model install --download` checks is that of the real files at the pinned commit."""
    assert real_model_data.source_digest == ICT_FACEKIT_DIGEST
    assert FACEKIT_ARCHIVE.name in real_model_data.source


def test_counts_and_names(real_model_data):
    d = real_model_data
    assert d.n_vertices == 26719 and len(d.polygon_sizes) == 26384
    assert d.identity_basis.shape == (100, 26719, 3) and d.expression_basis.shape == (53, 26719, 3)
    assert len(d.face_region) == 9409
    names = list(d.expression_names)
    assert "eyeBlinkLeft" in names and "jawOpen" in names and "browInnerUpRight" in names
    assert not any(n.endswith(("_L", "_R")) for n in names)
    assert set(d.material_parts) == {"skin", "mouth", "teeth", "eye", "eye_helper", "eyelashes"}
    # the face skin lives in UDIM tile 0 (1001), the back of the head in tile 1
    tiles = dict(zip(d.material_names, d.material_tiles, strict=True))
    assert tiles["M_Face"] == 0 and tiles["M_BackHead"] == 1


def test_eyeballs_split_into_iris_pupil_and_cornea(real_model_data):
    """ICT ships no eye textures; the conversion splits each eyeball by geometry (backend/model/facekit.py)."""
    d = real_model_data
    names = [str(n) for n in d.material_names]
    starts = np.concatenate([[0], np.cumsum(d.polygon_sizes)[:-1]])
    centres = np.add.reduceat(d.mean[d.corner_vertex], starts) / d.polygon_sizes[:, None]
    for side in ("Left", "Right"):
        parts = {m: centres[d.polygon_material == names.index(f"M_{m}{side}")] for m in
                 ("Sclera", "Iris", "Pupil", "Cornea")}
        assert all(len(p) for p in parts.values()), side
        assert d.material_parts[names.index(f"M_Cornea{side}")] == "eye_helper"  # see-through: left out
        assert [d.material_roles[names.index(f"M_{m}{side}")] for m in ("Sclera", "Iris", "Pupil", "Cornea")] == \
            ["sclera", "iris", "pupil", "cornea"]
        ball = parts["Sclera"].mean(0)
        # the cornea caps the iris in front, the pupil sits in the iris' middle, the sclera is the rest
        assert parts["Cornea"][:, 2].min() > parts["Iris"][:, 2].min() > ball[2]
        assert np.linalg.norm(parts["Pupil"][:, :2] - ball[:2], axis=1).max() < 0.003
        assert np.linalg.norm(parts["Sclera"][:, :2] - ball[:2], axis=1).max() > 0.01
        assert np.sign(ball[0]) == (1 if side == "Left" else -1)  # the subject's left is +x


def test_units_are_metres(real_model_data):
    width = np.ptp(real_model_data.mean[real_model_data.face_region, 0])
    assert 0.12 < width < 0.22  # a face is 12-22 cm wide


def test_identity_modes_are_orthogonal(real_model_data):
    basis = real_model_data.identity_basis.reshape(100, -1).astype(np.float64)
    gram = basis @ basis.T
    cosine = gram / np.sqrt(np.outer(np.diag(gram), np.diag(gram)))
    assert np.abs(cosine - np.eye(100)).max() < 0.01


@pytest.fixture(scope="module")
def model(real_model_data):
    return FaceModel.from_data(real_model_data)


def _named(model, name, weight=1.0):
    e = torch.zeros(1, model.n_expression)
    e[0, model.expression_names.index(name)] = weight
    return e


def test_jaw_open_moves_chin_down(model):
    id0 = torch.zeros(1, 100)
    rest = model.vertices(id0, torch.zeros(1, 53))
    open_ = model.vertices(id0, _named(model, "jawOpen"))
    lm_rest, lm_open = model.landmarks(rest)[0], model.landmarks(open_)[0]
    assert lm_open[8, 1] < lm_rest[8, 1] - 0.01  # chin more than 1 cm lower
    assert torch.allclose(lm_open[17:27], lm_rest[17:27], atol=1e-3)  # brows stay


def test_blink_left_closes_the_subjects_left_eye(model):
    id0 = torch.zeros(1, 100)
    rest = model.landmarks(model.vertices(id0, torch.zeros(1, 53)))[0]
    blink = model.landmarks(model.vertices(id0, _named(model, "eyeBlinkLeft")))[0]
    drop = rest[:, 1] - blink[:, 1]
    assert drop[[43, 44]].min() > 0.003  # subject's left eye (iBUG 42-47, +x): upper lid down > 3 mm
    assert drop[[37, 38]].abs().max() < 1e-4  # the right eye does not move
    assert (rest[42:48, 0] > 0).all()


def test_landmarks_sit_on_the_right_features(model):
    """In the frontal view (the picture docs/model_landmarks.png): eyes above nose above mouth above chin,
    iBUG left-right order as seen in the image, nose tip in front, and every landmark faces the camera."""
    verts = model.vertices(torch.zeros(1, 100), torch.zeros(1, 53))[0]
    lm = model.landmarks(verts[None])[0]
    y = lm[:, 1]
    assert y[36:48].min() > y[30] > y[48:68].max() > y[8]
    assert lm[36, 0] < lm[39, 0] < 0 < lm[42, 0] < lm[45, 0]  # image-left eye first
    assert lm[48, 0] < 0 < lm[54, 0] and lm[0, 0] < 0 < lm[16, 0]
    assert int(torch.argmax(lm[:, 2])) == 30  # nose tip closest to the camera
    tri = model.triangles
    corners = verts[tri]
    normals = torch.linalg.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    vn = torch.zeros_like(verts).index_add_(0, tri.reshape(-1), normals.repeat_interleave(3, 0))
    assert (vn[model.landmarks_ibug68, 2] > 0).all()
    aflw = model.landmarks(verts[None], "aflw21")[0]
    assert aflw[6, 0] < aflw[7, 0] < aflw[8, 0] < 0 < aflw[9, 0] < aflw[10, 0] < aflw[11, 0]
    assert aflw[12, 0] < aflw[0, 0] and aflw[16, 0] > aflw[5, 0]  # ears outside the brows
    assert aflw[7, 2] > lm[36, 2] and aflw[10, 2] > lm[45, 2]  # pupils in front of the eye corners


def test_batched_vertices_and_bad_shapes(model):
    g = torch.Generator().manual_seed(0)
    identity, expression = torch.randn(4, 100, generator=g), torch.rand(4, 53, generator=g)
    verts = model.vertices(identity, expression)
    assert verts.shape == (4, 26719, 3) and verts.dtype == torch.float32
    one = model.vertices(identity[2:3], expression[2:3])
    assert torch.allclose(verts[2:3], one, atol=1e-6)
    with pytest.raises(MlafaceError, match=r"expected identity \[B, 100\] and expression \[B, 53\]"):
        model.vertices(torch.zeros(2, 80), torch.zeros(2, 53))
    with pytest.raises(MlafaceError, match="unknown landmark set"):
        model.landmarks(verts, "ibug98")


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_bfloat16_agrees_with_float32(model, real_model_data, device):
    g = torch.Generator().manual_seed(1)
    identity, expression = torch.randn(2, 100, generator=g), torch.rand(2, 53, generator=g)
    ref = model.vertices(identity, expression)
    half = FaceModel.from_data(real_model_data).to(device=device, dtype=torch.bfloat16)
    out = half.vertices(identity.to(device), expression.to(device))
    assert out.dtype == torch.bfloat16 and out.device.type == device
    assert (out.float().cpu() - ref).abs().max() < 2e-3  # 2 mm on a head of 30 cm
    sub = half.face_subset()
    assert sub.mean.dtype == torch.bfloat16 and sub.triangles.dtype == torch.int64


def test_face_subset(model):
    sub = model.face_subset()
    assert 9409 < sub.n_vertices < 9409 + 10  # the face plus the few landmarks outside it (ears, pupils)
    assert sub.triangles.max() < sub.n_vertices and len(sub.triangles) >= 2 * 9000
    identity, expression = torch.randn(1, 100), torch.rand(1, 53)
    full = model.vertices(identity, expression)
    part = sub.vertices(identity, expression)
    for kind in ("ibug68", "aflw21"):
        assert torch.allclose(model.landmarks(full, kind), sub.landmarks(part, kind), atol=1e-6)


def test_a_model_file_without_roles_still_reads(real_model_data, tmp_path):
    """Model files written before material roles were stored get them from ICT-FaceKit's names when read."""
    from dataclasses import fields

    from backend.io.model_file import FORMAT, FORMAT_VERSION, read_model
    from backend.io.npz_file import write_npz

    arrays = {f.name: getattr(real_model_data, f.name) for f in fields(real_model_data) if f.name != "material_roles"}
    write_npz(tmp_path / "old.npz", FORMAT, FORMAT_VERSION, arrays)
    old = read_model(tmp_path / "old.npz")
    assert list(old.material_roles) == list(real_model_data.material_roles)
