"""Conversion of the ICT-FaceKit `FaceXModel/` folder (or an archive holding it) into a face model file.

Upstream (github.com/ICT-VGL/ICT-FaceKit, MIT): `generic_neutral_mesh.obj`, `identityNNN.obj` (full meshes; mode =
mesh - neutral, pre-scaled so coefficients are about N(0, 1)), one OBJ per expression named in
`vertex_indices.json["expressions"]` (full meshes; shape = mesh - neutral) and `vertex_indices.json`.
Upstream is in centimetres with y up and the face looking down +z; we keep the axes and convert to metres.
The extra upstream shapes `cheekRaiser_L/R` and `PupilDilate_L/R` are not in the expression list and are not read.

Expression names become ARKit style: `eyeBlink_L` -> `eyeBlinkLeft` (upstream `_L` is the subject's left, as
ARKit's `Left`). Upstream splits ARKit's `browInnerUp` and `cheekPuff` into left and right and has no `tongueOut`.

Upstream ships no eye textures: the eyeballs' iris, pupil and clear cornea are split off into their own materials
by geometry (`_split_eyeballs`), so that any renderer shows an iris behind a see-through cornea.

The 21 AFLW points (order in `AFLW21_NAMES`) are chosen on the model as follows, left/right as seen in a frontal
image (AFLW's convention, so "left eye" is the subject's right eye):
- brows, eye corners, nose and mouth: ICT's iBUG-68 landmark vertex at the same place (see `_AFLW21_FROM_IBUG68`;
  ICT's, not the moved ones of IBUG68_MOVED: AFLW's annotators mark the brows lower than the iBUG convention);
  "mouth centre" is iBUG 62 (inner upper lip, middle), "chin centre" iBUG 8, "nose centre" the tip, iBUG 30;
- eye centres: the front-most vertex (largest z) of the iris (`M_IrisRight` / `M_IrisLeft` polygons), the pupil;
- ears: AFLW marks the ear lobe; we take the lowest head vertex outside the face region (`M_Face`) and above the
  mouth corners (iBUG 48 / 54) that lies farther from the mid-plane (|x|) than the top of the jaw contour
  (iBUG 0 / 16) and behind it (smaller z). On ICT that is the front of the ear just above the lobe (the
  intertragic notch), within about 1 cm of where AFLW annotators click; see docs/model_landmarks.png.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import re
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..io.errors import MlafaceError
from ..io.model_file import FaceModelData, fan_triangulate
from ..io.obj import ObjMesh, read_obj, read_obj_vertices
from ..io.parts import ROLES, ict_roles, parts_of

NEUTRAL = "generic_neutral_mesh.obj"
INDICES = "vertex_indices.json"
CM_TO_M = 0.01

AFLW21_NAMES = (
    "left brow left corner", "left brow centre", "left brow right corner",
    "right brow left corner", "right brow centre", "right brow right corner",
    "left eye left corner", "left eye centre", "left eye right corner",
    "right eye left corner", "right eye centre", "right eye right corner",
    "left ear", "nose left", "nose centre", "nose right", "right ear",
    "mouth left corner", "mouth centre", "mouth right corner", "chin centre",
)
# iBUG-68 landmarks moved off ICT's vertex (`idx_to_landmark_verts`) to the vertex where the benchmark's convention
# (AFLW2000-3D's 3D points, the teacher's) has them: `python -m training.landmark_vertices` (its docstring, README);
# point: (ICT's vertex, ours). A source whose point is not at ICT's vertex (another mesh) keeps its own.
IBUG68_MOVED = {0: (1225, 1795), 16: (3443, 3850), 17: (268, 269), 18: (493, 494), 20: (2044, 2041),
                21: (1401, 2005), 22: (3615, 4205), 23: (4240, 4237), 25: (2734, 2735), 26: (2509, 2510),
                28: (4527, 1348), 29: (4942, 4839), 37: (1542, 1023), 39: (1528, 895), 42: (3742, 3136),
                44: (3756, 3243), 48: (5708, 5681), 49: (5695, 5665), 53: (6200, 6170), 55: (6346, 6357),
                56: (6461, 6480), 58: (5957, 5976), 59: (5841, 5852), 61: (5711, 5712), 62: (5533, 5526),
                63: (6216, 6217), 65: (6470, 6485), 67: (5966, 5981)}
_AFLW21_FROM_IBUG68 = {0: 17, 1: 19, 2: 21, 3: 22, 4: 24, 5: 26, 6: 36, 8: 39, 9: 42, 11: 45,
                       13: 31, 14: 30, 15: 35, 17: 48, 18: 62, 19: 54, 20: 8}

IRIS_RADIUS, PUPIL_RADIUS = 0.58, 0.22  # centimetres, as the source OBJ
FACE_MATERIAL = "M_Face"


def arkit_name(upstream: str) -> str:
    """`eyeBlink_L` -> `eyeBlinkLeft`, `jawOpen` -> `jawOpen`."""
    return re.sub(r"_L$", "Left", re.sub(r"_R$", "Right", upstream))


@contextmanager
def facekit_folder(source: str | Path) -> Iterator[Path]:
    """Yield the folder holding `generic_neutral_mesh.obj`: `source` itself, a folder below it, or the
    unpacked contents of a `.tar.xz` / `.tar.gz` / `.tar` / `.zip` archive (removed afterwards)."""
    source = Path(source)
    if not source.exists():
        raise MlafaceError(f"{source}: not found")
    if source.is_dir():
        yield _find_neutral(source, source)
        return
    with tempfile.TemporaryDirectory(prefix="mlaface-facekit-") as tmp:
        try:
            if zipfile.is_zipfile(source):
                with zipfile.ZipFile(source) as z:
                    z.extractall(tmp)
            elif tarfile.is_tarfile(source):
                with tarfile.open(source) as t:
                    t.extractall(tmp, filter="data")
            else:
                raise MlafaceError(f"{source}: not a folder, .zip or .tar(.xz/.gz) archive")
        except (tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, ValueError) as e:
            raise MlafaceError(f"{source}: corrupt or truncated archive ({e})") from None
        yield _find_neutral(Path(tmp), source)


def _find_neutral(root: Path, source: Path) -> Path:
    hits = sorted(root.glob(NEUTRAL)) or sorted(root.glob(f"*/{NEUTRAL}")) or sorted(root.glob(f"*/*/{NEUTRAL}"))
    if not hits:
        raise MlafaceError(f"{source}: no {NEUTRAL} inside; expected ICT-FaceKit's FaceXModel folder")
    return hits[0].parent


def _shape_files(folder: Path) -> tuple[list[Path], list[str], dict]:
    try:
        indices = json.loads((folder / INDICES).read_text())
        expressions = list(indices["expressions"])
        landmarks = indices["idx_to_landmark_verts"]
    except FileNotFoundError:
        raise MlafaceError(f"{folder / INDICES}: file not found") from None
    except (ValueError, KeyError, TypeError) as e:
        raise MlafaceError(f"{folder / INDICES}: not ICT-FaceKit vertex indices ({e})") from None
    if len(landmarks) != 68:
        raise MlafaceError(f"{folder / INDICES}: expected 68 landmark vertices, found {len(landmarks)}")
    identities = []
    while (folder / f"identity{len(identities):03d}.obj").is_file():
        identities.append(folder / f"identity{len(identities):03d}.obj")
    if not identities:
        raise MlafaceError(f"{folder}: no identity000.obj; expected ICT-FaceKit's FaceXModel folder")
    return identities, expressions, indices


def source_digest(files: list[Path]) -> str:
    """sha256 over the sorted (name, sha256 of content) of `files`: the identity of a model source,
    independent of how it was packed (git archive, tarball, zip)."""
    outer = hashlib.sha256()
    for f in sorted(files, key=lambda p: p.name):
        outer.update(f.name.encode() + b"\0" + hashlib.sha256(f.read_bytes()).hexdigest().encode() + b"\n")
    return outer.hexdigest()


def _aflw21(mesh: ObjMesh, ibug68: np.ndarray) -> np.ndarray:
    verts, out = mesh.vertices, np.full(21, -1, dtype=np.int64)
    for a, i in _AFLW21_FROM_IBUG68.items():
        out[a] = ibug68[i]
    for a, material in ((7, "M_IrisRight"), (10, "M_IrisLeft")):  # image-left eye is the subject's right
        if material not in mesh.materials:
            raise MlafaceError(f"the neutral mesh has no {material} polygons, needed for the AFLW eye centres")
        ids = _material_vertices(mesh, [material])
        out[a] = ids[np.argmax(verts[ids, 2])]
    skin = _material_vertices(mesh, [m for m, r in zip(mesh.materials, ict_roles(mesh.materials), strict=True)
                                     if ROLES[r].part == "skin"])
    head = np.setdiff1d(skin, _material_vertices(mesh, [FACE_MATERIAL]))
    for a, side, jaw in ((12, -1, 0), (16, 1, 16)):
        beyond = head[(side * verts[head, 0] > side * verts[ibug68[jaw], 0])
                      & (verts[head, 2] < verts[ibug68[jaw], 2])
                      & (verts[head, 1] > verts[ibug68[[48, 54]], 1].max())]
        if not len(beyond):
            raise MlafaceError("no ear found: no skin vertex lies beyond the top of the jaw contour")
        out[a] = beyond[np.argmin(verts[beyond, 1])]
    return out


def _split_eyeballs(mesh: ObjMesh) -> tuple[list[str], np.ndarray]:
    """ICT's eyeball is two nested balls: the outer (M_Sclera*) the white of the eye with a clear cornea in front
    of the iris, the inner (M_Iris*) painted with the iris, and no eye textures ship. Split them by geometry (eyes
    looking ahead, +z): polygons centred within IRIS_RADIUS of the eye's forward axis (+z through the outer
    ball's centre), on the front, become M_Cornea* (see-through) on the outer ball and stay M_Iris* on the inner
    one, M_Pupil* within PUPIL_RADIUS; the rest of the inner ball joins M_Sclera*.
    -> (material names, [F] polygon material)."""
    names, material = list(mesh.materials), mesh.polygon_material.copy()
    starts = np.concatenate([[0], np.cumsum(mesh.polygon_sizes)[:-1]])
    centres = np.add.reduceat(mesh.vertices[mesh.corner_vertex], starts) / mesh.polygon_sizes[:, None]
    for side in ("Left", "Right"):
        if f"M_Sclera{side}" not in names or f"M_Iris{side}" not in names:
            continue
        outer, inner = material == names.index(f"M_Sclera{side}"), material == names.index(f"M_Iris{side}")
        rel = centres - centres[outer].mean(0)
        off_axis = np.linalg.norm(rel[:, :2], axis=1)
        disc = (rel[:, 2] > 0) & (off_axis < IRIS_RADIUS)
        names += [f"M_Cornea{side}", f"M_Pupil{side}"]
        material[outer & disc] = names.index(f"M_Cornea{side}")
        material[inner & disc & (off_axis < PUPIL_RADIUS)] = names.index(f"M_Pupil{side}")
        material[inner & ~disc] = names.index(f"M_Sclera{side}")
    return names, material


def _material_vertices(mesh: ObjMesh, materials: list[str]) -> np.ndarray:
    """Sorted unique vertices of the polygons that use any of `materials`."""
    ids = [mesh.materials.index(m) for m in materials if m in mesh.materials]
    return np.unique(mesh.corner_vertex[np.repeat(np.isin(mesh.polygon_material, ids), mesh.polygon_sizes)])


def convert_folder(folder: Path, source_name: str) -> FaceModelData:
    """Read an ICT-FaceKit FaceXModel folder into FaceModelData (metres, 0-based, ARKit names)."""
    identities, expressions, indices = _shape_files(folder)
    mesh = read_obj(folder / NEUTRAL)
    V = len(mesh.vertices)

    def offsets(files: list[Path]) -> np.ndarray:
        out = np.empty((len(files), V, 3), dtype=np.float32)
        for i, f in enumerate(files):
            v = read_obj_vertices(f)
            if len(v) != V:
                raise MlafaceError(f"{f}: {len(v)} vertices, expected {V} as in {NEUTRAL} (not the same topology)")
            out[i] = (v - mesh.vertices) * CM_TO_M
        return out

    expression_files = [folder / f"{name}.obj" for name in expressions]
    identity_basis = offsets(identities)
    expression_basis = offsets(expression_files)

    ict68 = np.asarray(indices["idx_to_landmark_verts"], dtype=np.int64)
    ibug68 = ict68.copy()
    for k, (ict, ours) in IBUG68_MOVED.items():
        if ict68[k] == ict and ours < V:
            ibug68[k] = ours
    rigid = np.asarray(indices.get("idx_to_rigid_verts", []), dtype=np.int64)
    if ibug68.min() < 0 or ibug68.max() >= V or (rigid.size and (rigid.min() < 0 or rigid.max() >= V)):
        raise MlafaceError(f"{folder / INDICES}: vertex indices outside the {V} vertices of {NEUTRAL}")
    tri_corners, tri_poly = fan_triangulate(mesh.polygon_sizes)
    uv = mesh.uvs[mesh.corner_uv]
    materials, polygon_material = _split_eyeballs(mesh)
    tiles = [int(np.floor(uv[np.repeat(polygon_material == i, mesh.polygon_sizes), 0].min()))
             for i in range(len(materials))]
    if FACE_MATERIAL not in mesh.materials:
        raise MlafaceError(f"{folder / NEUTRAL}: no {FACE_MATERIAL} polygons (the front face)")
    i32 = np.int32
    data = FaceModelData(
        source=f"ICT-FaceKit FaceXModel ({source_name}), MIT licence",
        source_digest=source_digest([folder / NEUTRAL, folder / INDICES, *identities, *expression_files]),
        mean=(mesh.vertices * CM_TO_M).astype(np.float32),
        identity_basis=identity_basis,
        expression_basis=expression_basis,
        expression_names=np.array([arkit_name(e) for e in expressions]),
        expression_names_upstream=np.array(expressions),
        polygon_sizes=mesh.polygon_sizes.astype(i32),
        corner_vertex=mesh.corner_vertex.astype(i32),
        corner_uv=uv.astype(np.float32),
        polygon_material=polygon_material.astype(i32),
        material_names=np.array(materials),
        material_roles=np.array(ict_roles(materials)),
        material_parts=np.array(parts_of(ict_roles(materials))),
        material_tiles=np.array(tiles, dtype=i32),
        triangles=mesh.corner_vertex[tri_corners].astype(i32),
        triangle_corners=tri_corners.astype(i32),
        triangle_polygon=tri_poly.astype(i32),
        landmarks_ibug68=ibug68.astype(i32),
        landmarks_detector68=ict68.astype(i32),
        landmarks_aflw21=_aflw21(mesh, ict68).astype(i32),
        face_region=_material_vertices(mesh, [FACE_MATERIAL]).astype(i32),
        rigid_vertices=rigid.astype(i32),
    )
    return data


def convert(source: str | Path) -> FaceModelData:
    """Convert a FaceXModel folder or an archive of it (see `facekit_folder`)."""
    with facekit_folder(source) as folder:
        return convert_folder(folder, Path(source).name)
