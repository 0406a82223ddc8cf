"""The face model file: one versioned `.npz` (no pickle) holding everything the face model needs.

Conventions, the same everywhere in mlaface:
- units: metres;
- axes: right-handed, +x towards the subject's left, +y up, +z out of the face (the face looks down +z),
  which is glTF's frame; Blender (z up) gets it rotated by +90 degrees about x on import;
- indices: 0-based int32; polygons kept as in the source OBJ (quads stay quads) in Blender's layout
  (corners back to back plus corners per polygon), with a triangulation beside them for rendering;
- UVs: (u, v) with v up (OBJ/Blender), the integer part of u is the part's UDIM tile (tile 1001 + floor(u)).

Arrays (V vertices, F polygons, C polygon corners, T triangles, K identity modes, E expressions, M materials):
    format: str, FORMAT; format_version: int, FORMAT_VERSION
    source: str, where the model came from; source_digest: str, sha256 of the source files (see facekit.py)
    mean: [V, 3] float32, neutral face, metres
    identity_basis: [K, V, 3] float32, metres per unit coefficient (coefficients are about N(0, 1))
    expression_basis: [E, V, 3] float32, offset at weight 1, metres (weights in [0, 1] are shape-key values)
    expression_names: [E] str, ARKit style (`eyeBlinkLeft`); expression_names_upstream: [E] str (`eyeBlink_L`)
    polygon_sizes: [F] int32; corner_vertex: [C] int32; corner_uv: [C, 2] float32
    polygon_material: [F] int32 into material_names
    material_names: [M] str; material_roles: [M] str (a role of io/parts.py: face, head, iris, ...);
    material_parts: [M] str (the roles' parts); material_tiles: [M] int32 (floor(u))
    triangles: [T, 3] int32 vertices, counter-clockwise seen from outside
    triangle_corners: [T, 3] int32 into the corner arrays (for UVs); triangle_polygon: [T] int32
    landmarks_ibug68: [68] int32 vertices, the iBUG points where the benchmark's 3D convention has them (the
    teacher's, the network's; model/facekit.py, IBUG68_MOVED); landmarks_detector68: [68] int32 vertices, where a
    2D detector (dlib) puts them (upstream's own); landmarks_aflw21: [21] int32 vertices
    face_region: [R] int32 vertices of the front face (the skin the photo shows), sorted
    rigid_vertices: [N] int32 vertices that expressions barely move (skull), from upstream
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .errors import MlafaceError
from .npz_file import read_npz, write_npz
from .parts import ict_roles, roles_problem

FORMAT = "mlaface.face_model"
FORMAT_VERSION = 2  # 2: iBUG-68 landmarks moved to the benchmark's convention (model/facekit.py, IBUG68_MOVED)


@dataclass(frozen=True)
class FaceModelData:
    """The arrays of a face model file (shapes and meaning in this module's docstring)."""

    source: str
    source_digest: str
    mean: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    expression_names: np.ndarray
    expression_names_upstream: np.ndarray
    polygon_sizes: np.ndarray
    corner_vertex: np.ndarray
    corner_uv: np.ndarray
    polygon_material: np.ndarray
    material_names: np.ndarray
    material_roles: np.ndarray
    material_parts: np.ndarray
    material_tiles: np.ndarray
    triangles: np.ndarray
    triangle_corners: np.ndarray
    triangle_polygon: np.ndarray
    landmarks_ibug68: np.ndarray
    landmarks_detector68: np.ndarray
    landmarks_aflw21: np.ndarray
    face_region: np.ndarray
    rigid_vertices: np.ndarray

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    def check(self, where: str = "face model") -> None:
        """Raise MlafaceError unless shapes and indices agree with each other."""
        V = self.n_vertices
        problems = []
        if self.mean.shape != (V, 3):
            problems.append(f"mean has shape {self.mean.shape}")
        if self.identity_basis.shape[1:] != (V, 3):
            problems.append(f"identity_basis has shape {self.identity_basis.shape}, expected [K, {V}, 3]")
        if self.expression_basis.shape[1:] != (V, 3):
            problems.append(f"expression_basis has shape {self.expression_basis.shape}, expected [E, {V}, 3]")
        if len(self.expression_names) != len(self.expression_basis):
            problems.append("expression_names and expression_basis differ in length")
        if self.polygon_sizes.sum() != len(self.corner_vertex) or len(self.corner_uv) != len(self.corner_vertex):
            problems.append("polygon corners do not add up")
        for name in ("corner_vertex", "triangles", "landmarks_ibug68", "landmarks_detector68", "landmarks_aflw21",
                     "face_region", "rigid_vertices"):
            a = getattr(self, name)
            if a.size and (a.min() < 0 or a.max() >= V):
                problems.append(f"{name} refers to vertices outside 0..{V - 1}")
        if problem := roles_problem(self.material_roles, self.material_names):
            problems.append(problem)
        if (self.landmarks_ibug68.shape != (68,) or self.landmarks_detector68.shape != (68,)
                or self.landmarks_aflw21.shape != (21,)):
            problems.append("landmark lists must hold 68, 68 and 21 vertices")
        if problems:
            raise MlafaceError(f"{where}: inconsistent model file: " + "; ".join(problems))


def fan_triangulate(polygon_sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fan-triangulate polygons laid out back to back (Blender's layout): ([T, 3] corner ids, [T] polygon ids),
    polygons in order, winding kept."""
    starts = np.concatenate([[0], np.cumsum(polygon_sizes)[:-1]])
    n_tri = np.asarray(polygon_sizes) - 2
    poly = np.repeat(np.arange(len(starts)), n_tri)
    k = np.arange(n_tri.sum()) - np.repeat(np.cumsum(n_tri) - n_tri, n_tri)  # triangle number in its polygon
    first = starts[poly]
    return np.stack([first, first + k + 1, first + k + 2], axis=1), poly


_STRING_FIELDS = ("source", "source_digest")


def write_model(path: str | Path, data: FaceModelData) -> Path:
    """Write `data` to `path` atomically: a crash never leaves a half-written model file behind."""
    data.check(str(path))
    return write_npz(path, FORMAT, FORMAT_VERSION, {f.name: getattr(data, f.name) for f in fields(data)})


def read_model(path: str | Path) -> FaceModelData:
    """Read and check a face model file; every problem is an MlafaceError naming the file."""
    required = [f.name for f in fields(FaceModelData) if f.name != "material_roles"]
    arrays = read_npz(path, FORMAT, FORMAT_VERSION, "face model file", required,
                      "; reinstall the model with `mlaface model install` (in Blender: Download Face Model in "
                      "the add-on's preferences)")
    if "material_roles" not in arrays:  # written before roles were stored: ICT-FaceKit's names tell them
        arrays["material_roles"] = np.array(ict_roles(arrays["material_names"]))
    values = {f.name: arrays[f.name] for f in fields(FaceModelData)}
    for name in _STRING_FIELDS:
        values[name] = str(values[name])
    for a in values.values():
        if isinstance(a, np.ndarray):
            a.flags.writeable = False  # model data is never changed; FaceResults written from it reuse its entries
    data = FaceModelData(**values)
    data.check(str(path))
    return data
