"""3D shape against scans: the protocols' alignment and distance, the scan readers and layouts, malformed scans,
and the synthetic benchmark through `mlaface evaluate scans`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import MLAFACE
from scipy.spatial.transform import Rotation

from backend.io.errors import MlafaceError
from training.scan_eval import shape_surface
from training.scan_files import find_cases, load_scan, read_landmarks, read_mesh
from training.shape_metric import Similarity, Surface, now_crop, scan_errors, similarity


def sphere(radius: float, n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """n points spread over a sphere (a Fibonacci lattice) and the triangles of their convex hull."""
    from scipy.spatial import ConvexHull

    i = np.arange(n) + 0.5
    z, phi = 1 - 2 * i / n, np.pi * (1 + 5 ** 0.5) * i
    r = np.sqrt(1 - z * z)
    points = np.stack([r * np.cos(phi), r * np.sin(phi), z], 1) * radius
    return points, ConvexHull(points).simplices


@pytest.fixture(scope="module")
def face(real_model_data):
    tris, marks = shape_surface(real_model_data)
    verts = real_model_data.mean.astype(np.float64) * 1000
    return verts, tris, marks


def test_the_alignment_recovers_a_known_similarity(face):
    verts, tris, marks = face
    known = Similarity(1.13, Rotation.from_euler("xyz", [8, -25, 4], degrees=True).as_matrix(),
                       np.array([12.0, -40.0, 300.0]))
    used = np.unique(tris)
    scan = known(verts[used])  # the scan is the face moved, turned and scaled
    errors, cropped, found = scan_errors(scan, known(verts[marks]), Surface(verts, tris), verts[marks])
    assert abs(found.scale - known.scale) < 1e-4
    np.testing.assert_allclose(found.rotation, known.rotation, atol=1e-4)
    assert np.linalg.norm(found.translation - known.translation) < 1e-4 * np.linalg.norm(known.translation)
    assert errors.max() < 1e-3 and 2000 < len(cropped) < len(scan)  # NoW's mask keeps the face, not the head
    # the same from the nose tip alone (MICC: no scan landmarks), the scan in place
    errors, _, found = scan_errors(verts[used] + [3.0, -2.0, 1.0], None, Surface(verts, tris), verts[marks])
    assert errors.mean() < 0.01 and abs(found.scale - 1) < 1e-3


def test_a_scan_two_millimetres_off_reads_two(face):
    ball, tris = sphere(100.0)
    normals = ball / 100.0
    d, _ = Surface(ball, tris).closest(ball + 2.0 * normals)
    np.testing.assert_allclose(d, 2.0, atol=1e-6)
    verts, tris, marks = face
    mesh = Surface(verts, tris)
    n = np.zeros_like(verts)
    for k in range(3):  # area-weighted vertex normals of the face surface
        np.add.at(n, tris[:, k], np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]]))
    used = np.unique(tris)
    n = n[used] / np.linalg.norm(n[used], axis=1, keepdims=True)
    keep = now_crop(verts[used], verts[marks])
    d, _ = mesh.closest((verts[used] + 2.0 * n)[keep])
    assert abs(np.median(d) - 2.0) < 0.02  # concave folds (beside the nose) read a little less


def test_similarity_is_least_squares():
    g = np.random.default_rng(1)
    src = g.normal(size=(50, 3))
    known = Similarity(0.7, Rotation.random(random_state=4).as_matrix(), g.normal(size=3))
    found = similarity(src, known(src))
    assert abs(found.scale - 0.7) < 1e-12 and np.allclose(found(src), known(src))


OBJ = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvt 0 0\nf 1/1 2/1 3/1 4/1\nf -4 -2 -1\n"
WRL = """#VRML V2.0 utf8
Shape { geometry IndexedFaceSet { coord Coordinate { point [ 0 0 0, 1 0 0, 1 1 0, 0 1 0 ] }
  coordIndex [ 0, 1, 2, 3, -1, 0, 2, 3, -1 ] } }"""
PP = """<!DOCTYPE PickedPoints><PickedPoints><DocumentData><DataFileName name="s.obj"/></DocumentData>
""" + "\n".join(f'<point x="{i}" y="{2 * i}" z="{3 * i}" active="1" name="{i}"/>' for i in range(7)) + \
    "\n</PickedPoints>\n"


def test_the_readers(tmp_path):
    (tmp_path / "a.obj").write_text(OBJ)
    v, t = read_mesh(tmp_path / "a.obj")
    assert v.shape == (4, 3) and t.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    (tmp_path / "a.wrl").write_text(WRL)
    v, t = read_mesh(tmp_path / "a.wrl")
    assert v.shape == (4, 3) and t.tolist() == [[0, 1, 2], [0, 2, 3], [0, 2, 3]]
    (tmp_path / "a.pp").write_text(PP)
    np.testing.assert_array_equal(read_landmarks(tmp_path / "a.pp", "x")[:, 2], 3 * np.arange(7))
    (tmp_path / "a.txt").write_text("\n".join(f"{i} 0 0" for i in range(7)))
    assert read_landmarks(tmp_path / "a.txt", "x").shape == (7, 3)


def _scan_file(path, k=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("v 0 0 0\n" + f"v {100 * k} 0 0\nv {100 * k} {100 * k} 0\nv 0 {100 * k} 0\nf 1 2 3 4\n")


def test_the_layouts(tmp_path):
    now = tmp_path / "now"
    (now / "imagepathsvalidation.txt").parent.mkdir(parents=True)
    (now / "imagepathsvalidation.txt").write_text("FaMoS_1/selfie/IMG_1.jpg\nFaMoS_1/multiview_neutral/IMG_2.jpg\n")
    pics = now / "NoW_Dataset" / "final_release_version" / "iphone_pictures" / "FaMoS_1"
    for name in ("selfie/IMG_1.jpg", "multiview_neutral/IMG_2.jpg"):
        (pics / name).parent.mkdir(parents=True, exist_ok=True)
        (pics / name).write_bytes(b"jpg")
    _scan_file(now / "scans" / "FaMoS_1" / "natural_head_rotation.000001.obj")
    (now / "scans_lmks_onlypp" / "FaMoS_1").mkdir(parents=True)
    (now / "scans_lmks_onlypp" / "FaMoS_1" / "x.pp").write_text(PP)
    cases = find_cases(now)
    assert [c.name for c in cases] == ["FaMoS_1/selfie/IMG_1.jpg", "FaMoS_1/multiview_neutral/IMG_2.jpg"]
    assert cases[0].photos[0] == pics / "selfie" / "IMG_1.jpg" and load_scan(cases[0]).landmarks.shape == (7, 3)

    micc = tmp_path / "micc"
    _scan_file(micc / "subject_01" / "Model" / "sidel" / "obj" / "s.obj")
    _scan_file(micc / "subject_01" / "Model" / "frontal1" / "obj" / "f.obj", k=0.001)  # in metres
    (micc / "subject_01" / "Model" / "frontal1" / "obj" / "f.bmp").write_bytes(b"texture")
    (micc / "subject_01" / "Video" / "Indoor-Cooperative").mkdir(parents=True)
    (micc / "subject_01" / "Video" / "Indoor-Cooperative" / "a.mjpg").write_bytes(b"video")
    (micc / "subject_01" / "photo.jpg").write_bytes(b"jpg")
    (case,) = find_cases(micc)
    assert case.scan.name == "f.obj" and case.photos == (micc / "subject_01" / "photo.jpg",)  # not the texture
    assert case.landmarks is None and np.ptp(load_scan(case).vertices) == pytest.approx(100.0)  # metres -> mm

    (tmp_path / "m").mkdir()
    _scan_file(tmp_path / "m" / "s.obj")
    (tmp_path / "m" / "manifest.json").write_text(json.dumps({"units": "mm", "cases": [
        {"subject": "a", "photos": ["a.jpg"], "scan": "s.obj", "landmarks": [[i, 0, 0] for i in range(7)]}]}))
    (case,) = find_cases(tmp_path / "m")
    assert case.subject == "a" and load_scan(case).landmarks[6, 0] == 6


def test_malformed_scans_are_refused_with_the_file(tmp_path):
    (tmp_path / "empty.obj").write_text("# nothing\n")
    with pytest.raises(MlafaceError, match="empty.obj: empty mesh"):
        read_mesh(tmp_path / "empty.obj")
    (tmp_path / "nan.obj").write_text("v nan 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    with pytest.raises(MlafaceError, match="nan.obj: 1 vertices are not finite"):
        read_mesh(tmp_path / "nan.obj")
    (tmp_path / "bad.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(MlafaceError, match="bad.obj: faces index vertices that do not exist"):
        read_mesh(tmp_path / "bad.obj")
    with pytest.raises(MlafaceError, match="gone.pp: scan landmarks not found"):
        read_landmarks(tmp_path / "gone.pp", "x")
    (tmp_path / "five.txt").write_text("\n".join("1 2 3" for _ in range(5)))
    with pytest.raises(MlafaceError, match="five.txt: needs the 7 landmarks"):
        read_landmarks(tmp_path / "five.txt", "x")
    (tmp_path / "manifest.json").write_text('{"cases": [{"photos": []}]}')
    with pytest.raises(MlafaceError, match="manifest.json: not a scan manifest"):
        find_cases(tmp_path)


@pytest.mark.slow
def test_the_synthetic_benchmark_through_the_command(real_model_path, tmp_path):
    """Two rendered faces and their scans, scored by every method through `mlaface evaluate scans`."""
    from training.synthetic_scans import make_benchmark

    manifest = make_benchmark(tmp_path / "bench", 2, None, str(real_model_path))
    r = subprocess.run([str(MLAFACE), "evaluate", "scans", str(manifest.parent), "--model", str(real_model_path),
                        "--fit-steps", "20", "--device", "cpu", "-o", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "scans.json").read_text())
    assert report["cases"] + len(report["skipped"]) == 2 and report["cases"] >= 1
    assert list(report["table"]) == ["mean face", "landmark fit", "network", "network + fit"]
    assert all(0.05 < row["mean"] < 10 for row in report["table"].values()), report["table"]
    assert (tmp_path / "out" / "scans_error.png").stat().st_size > 10_000
    assert "mean face" in r.stdout and "network + fit" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "backend", "evaluate", "scans", str(tmp_path / "nowhere")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "nowhere: not found" in bad.stderr
