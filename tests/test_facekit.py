"""The ICT-FaceKit converter and the model file format, on a tiny hand-made OBJ set: results and bad input."""

from __future__ import annotations

import json
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import GRID, TINY_EXPRESSIONS, make_tiny_facekit, tiny_neutral

from backend.io.errors import MlafaceError
from backend.io.model_file import FORMAT_VERSION, read_model, write_model
from backend.io.obj import read_obj
from backend.model.facekit import IBUG68_MOVED, arkit_name, convert


def test_arkit_names():
    assert arkit_name("eyeBlink_L") == "eyeBlinkLeft"
    assert arkit_name("mouthSmile_R") == "mouthSmileRight"
    assert arkit_name("jawOpen") == "jawOpen"
    assert arkit_name("browInnerUp_L") == "browInnerUpLeft"


def test_tiny_set_converts(tiny_facekit):
    verts_cm, polys = tiny_neutral()
    data = convert(tiny_facekit)
    data.check()
    np.testing.assert_allclose(data.mean, verts_cm * 0.01, atol=1e-6)  # metres
    assert list(data.expression_names) == ["jawOpen", "eyeBlinkLeft"]
    assert list(data.expression_names_upstream) == TINY_EXPRESSIONS
    jaw = data.expression_basis[0]
    assert np.allclose(jaw[verts_cm[:, 1] < 0, 1], -0.02, atol=1e-6)  # 2 cm down, in metres
    assert np.allclose(jaw[verts_cm[:, 1] >= 0], 0)
    assert data.identity_basis.shape == (2, len(verts_cm), 3)
    # polygons as in the OBJ: quads kept, the split cell as two triangles
    assert list(data.polygon_sizes[:3]) == [3, 3, 4]
    assert data.polygon_sizes.sum() == len(data.corner_vertex)
    assert len(data.triangles) == int((data.polygon_sizes - 2).sum())
    # triangles keep the polygon winding: face triangles point at +z
    tri = data.mean[data.triangles[data.triangle_polygon < (GRID - 1) ** 2 + 1]]
    normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    assert (normals[:, 2] > 0).all()
    assert list(data.material_names) == ["M_Face", "M_BackHead", "M_IrisLeft", "M_IrisRight"]
    assert list(data.material_parts) == ["skin", "skin", "eye", "eye"]
    assert list(data.material_roles) == ["face", "head", "iris", "iris"]  # stored: nothing reads names after this
    assert list(data.material_tiles) == [0, 1, 0, 0]
    np.testing.assert_array_equal(data.face_region, np.arange(GRID * GRID))


def test_tiny_set_aflw_points(tiny_facekit):
    data = convert(tiny_facekit)
    verts, _ = tiny_neutral()
    lm = data.landmarks_aflw21
    # eye centres: front-most iris vertex; AFLW's "left eye" is the subject's right (x < 0)
    assert tuple(verts[lm[7]]) == (-2.5 - 0.3, 2.5, 6.4)
    assert tuple(verts[lm[10]]) == (2.5 - 0.3, 2.5, 6.4)
    # ears: the lowest vertex of the ear quads, image-left ear (12) on the subject's right
    assert verts[lm[12], 0] == -9 and verts[lm[12], 1] == -1
    assert verts[lm[16], 0] == 9 and verts[lm[16], 1] == -1
    assert lm[20] == data.landmarks_ibug68[8]  # chin


def test_ict_landmarks_move_and_other_meshes_keep_theirs(tiny_facekit, real_model_data):
    for k, (ict, ours) in IBUG68_MOVED.items():
        assert real_model_data.landmarks_ibug68[k] == ours and real_model_data.landmarks_detector68[k] == ict
    same = [k for k in range(68) if k not in IBUG68_MOVED]
    np.testing.assert_array_equal(real_model_data.landmarks_ibug68[same], real_model_data.landmarks_detector68[same])
    assert real_model_data.landmarks_aflw21[2] == IBUG68_MOVED[21][0]  # AFLW's brow stays on ICT's vertex
    tiny = json.loads((tiny_facekit / "vertex_indices.json").read_text())["idx_to_landmark_verts"]
    np.testing.assert_array_equal(convert(tiny_facekit).landmarks_ibug68, tiny)
    np.testing.assert_array_equal(convert(tiny_facekit).landmarks_detector68, tiny)


@pytest.mark.parametrize("packing", ["tar.xz", "zip"])
def test_archives_convert_like_the_folder(tiny_facekit, tmp_path, packing):
    archive = tmp_path / f"facekit.{packing}"
    if packing == "zip":  # GitHub's layout: a top folder named after the commit
        with zipfile.ZipFile(archive, "w") as z:
            for f in tiny_facekit.iterdir():
                z.write(f, f"ICT-FaceKit-abc/FaceXModel/{f.name}")
    else:
        with tarfile.open(archive, "w:xz") as t:
            t.add(tiny_facekit, "FaceXModel")
    assert convert(archive).source_digest == convert(tiny_facekit).source_digest


def test_model_file_round_trip(tiny_facekit, tmp_path):
    data = convert(tiny_facekit)
    path = write_model(tmp_path / "m.npz", data)
    back = read_model(path)
    for name in ("mean", "identity_basis", "expression_basis", "triangles", "corner_uv", "landmarks_aflw21"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
    assert back.source_digest == data.source_digest
    with np.load(path, allow_pickle=False) as npz:  # no pickled objects anywhere
        assert int(npz["format_version"]) == FORMAT_VERSION


# --- bad input --------------------------------------------------------------------------------------------------

def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_missing_source(tmp_path):
    with pytest.raises(MlafaceError, match="nowhere: not found"):
        convert(tmp_path / "nowhere")


def test_folder_without_model(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MlafaceError, match="no generic_neutral_mesh.obj inside"):
        convert(tmp_path / "empty")


def test_truncated_neutral(tiny_facekit):
    _truncate(tiny_facekit / "generic_neutral_mesh.obj", 0.6)
    with pytest.raises(MlafaceError, match=r"generic_neutral_mesh\.obj"):
        convert(tiny_facekit)


def test_truncated_shape_names_file_and_counts(tiny_facekit):
    path = tiny_facekit / "identity001.obj"
    path.write_text("\n".join(path.read_text().splitlines()[:40]))  # cut at a line end
    with pytest.raises(MlafaceError, match=r"identity001\.obj: 38 vertices, expected 97"):
        convert(tiny_facekit)
    _truncate(path, 0.5)  # cut inside a line
    with pytest.raises(MlafaceError, match=r"identity001\.obj, line \d+: bad vertex line"):
        convert(tiny_facekit)


def test_foreign_obj_wrong_vertex_count(tiny_facekit):
    (tiny_facekit / "jawOpen.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(MlafaceError, match=r"jawOpen\.obj: 3 vertices, expected 97 .*not the same topology"):
        convert(tiny_facekit)


def test_garbage_line_names_line(tiny_facekit):
    path = tiny_facekit / "eyeBlink_L.obj"
    lines = path.read_text().splitlines()
    lines[5] = "v 1.0 oops 2.0"
    path.write_text("\n".join(lines))
    with pytest.raises(MlafaceError, match=r"eyeBlink_L\.obj, line 6: bad vertex line"):
        convert(tiny_facekit)


def test_binary_file_as_obj(tiny_facekit):
    (tiny_facekit / "generic_neutral_mesh.obj").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0binary")
    with pytest.raises(MlafaceError, match="not an OBJ file"):
        convert(tiny_facekit)


def test_missing_expression_file(tiny_facekit):
    (tiny_facekit / "eyeBlink_L.obj").unlink()
    with pytest.raises(MlafaceError, match=r"eyeBlink_L\.obj: file not found"):
        convert(tiny_facekit)


def test_bad_vertex_indices(tiny_facekit):
    (tiny_facekit / "vertex_indices.json").write_text("{not json")
    with pytest.raises(MlafaceError, match="vertex_indices.json: not ICT-FaceKit vertex indices"):
        convert(tiny_facekit)
    (tiny_facekit / "vertex_indices.json").write_text(json.dumps(
        {"expressions": [], "idx_to_landmark_verts": [0] * 67}))
    with pytest.raises(MlafaceError, match="expected 68 landmark vertices, found 67"):
        convert(tiny_facekit)
    (tiny_facekit / "vertex_indices.json").write_text(json.dumps(
        {"expressions": [], "idx_to_landmark_verts": [10**6] * 68}))
    with pytest.raises(MlafaceError, match="vertex indices outside the 97 vertices"):
        convert(tiny_facekit)


@pytest.mark.parametrize("packing", ["tar.xz", "zip"])
def test_corrupt_archive(tiny_facekit, tmp_path, packing):
    archive = tmp_path / f"facekit.{packing}"
    if packing == "zip":
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            for f in tiny_facekit.iterdir():
                z.write(f, f"FaceXModel/{f.name}")
        data = bytearray(archive.read_bytes())
        data[200:260] = b"\xff" * 60  # damage the first member's compressed bytes
        archive.write_bytes(bytes(data))
    else:
        with tarfile.open(archive, "w:xz") as t:
            t.add(tiny_facekit, "FaceXModel")
        _truncate(archive, 0.5)
    with pytest.raises(MlafaceError, match=rf"facekit\.{packing.replace('.', '[.]')}: corrupt or truncated archive"):
        convert(archive)


def test_not_an_archive(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello")
    with pytest.raises(MlafaceError, match="not a folder, .zip or .tar"):
        convert(f)


def test_obj_reader_rejects_out_of_range_faces(tmp_path):
    f = tmp_path / "bad.obj"
    f.write_text("v 0 0 0\nv 1 0 0\nvt 0 0\nf 1/1 2/1 7/1\n")
    with pytest.raises(MlafaceError, match="outside 1..2"):
        read_obj(f)


def test_read_model_errors(tmp_path, tiny_facekit):
    with pytest.raises(MlafaceError, match="face model file not found"):
        read_model(tmp_path / "absent.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(MlafaceError, match="junk.npz: not a readable face model file"):
        read_model(junk)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(MlafaceError, match="not an mlaface face model file"):
        read_model(other)
    good = write_model(tmp_path / "good.npz", convert(tiny_facekit))
    with np.load(good) as npz:
        arrays = dict(npz)
    arrays["format_version"] = np.array(FORMAT_VERSION + 1)
    future = tmp_path / "future.npz"
    np.savez(future, **arrays)
    with pytest.raises(MlafaceError, match=f"format version {FORMAT_VERSION + 1}.*reinstall"):
        read_model(future)
    _truncate(good, 0.5)
    with pytest.raises(MlafaceError, match="good.npz: not a readable face model file"):
        read_model(good)


def test_write_is_atomic(tiny_facekit, tmp_path, monkeypatch):
    """A failure while writing leaves the previous model file untouched and no partial file behind."""
    data = convert(tiny_facekit)
    path = write_model(tmp_path / "models" / "m.npz", data)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", crash)
    with pytest.raises(OSError, match="disk full"):
        write_model(path, data)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.npz"]


def test_tiny_set_is_rebuildable(tmp_path):
    """The hand-made set is deterministic: two builds give the same source digest."""
    a = convert(make_tiny_facekit(tmp_path / "a")).source_digest
    b = convert(make_tiny_facekit(tmp_path / "b")).source_digest
    assert a == b
