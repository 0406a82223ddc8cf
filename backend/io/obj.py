"""Wavefront OBJ: reading the subset ICT-FaceKit writes (`v`, `vt`, `f` with `v/vt` corners, `usemtl`), and writing
a FaceResult as OBJ + MTL + PNG (`write_obj`).

Reading: polygons are kept as they are in the file (quads stay quads), in Blender's layout: a flat list of corners
and the number of corners of each polygon. Indices are 0-based; units are the file's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import MlafaceError
from .face_result import FaceResult


@dataclass(frozen=True)
class ObjMesh:
    """One OBJ file's geometry.

    vertices: [V, 3] float64, file units
    uvs: [T, 2] float64, (u, v), v up as in OBJ
    corner_vertex: [C] int64, vertex of each polygon corner, polygons back to back
    corner_uv: [C] int64, uv of each corner
    polygon_sizes: [F] int64, corners per polygon (3 or more)
    polygon_material: [F] int64, index into `materials`, -1 before the first `usemtl`
    materials: names in order of first use
    """

    vertices: np.ndarray
    uvs: np.ndarray
    corner_vertex: np.ndarray
    corner_uv: np.ndarray
    polygon_sizes: np.ndarray
    polygon_material: np.ndarray
    materials: tuple[str, ...]


def _lines(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MlafaceError(f"{path}: file not found") from None
    except OSError as e:
        raise MlafaceError(f"{path}: cannot read ({e.strerror})") from None
    if b"\0" in data[:4096]:
        raise MlafaceError(f"{path}: not an OBJ file (binary data)")
    return data.split(b"\n")


def _floats(path: Path, rows: list[tuple[int, bytes]], width: int, what: str) -> np.ndarray:
    """Parse `(line_number, line)` rows of `width` numbers after the keyword into [N, width] float64."""
    out = np.empty((len(rows), width))
    for i, (lineno, line) in enumerate(rows):
        fields = line.split()[1 : width + 1]
        try:
            if len(fields) != width:
                raise ValueError
            out[i] = [float(f) for f in fields]
        except ValueError:
            raise MlafaceError(
                f"{path}, line {lineno}: bad {what} line {line[:60].decode(errors='replace')!r} "
                f"(file truncated or not an OBJ?)"
            ) from None
    if not np.isfinite(out).all():
        raise MlafaceError(f"{path}: non-finite {what} values")
    return out


def read_obj_vertices(path: str | Path) -> np.ndarray:
    """Only the `v` lines of an OBJ: [V, 3] float64. Fast path for shape files that share a topology."""
    path = Path(path)
    lines = [line for line in _lines(path) if line.startswith(b"v ")]
    if not lines:
        raise MlafaceError(f"{path}: no vertices (not an OBJ file?)")
    try:  # fast path: one parse of all numbers; the careful per-line parse finds the culprit otherwise
        out = np.array(b" ".join(line[2:] for line in lines).split(), dtype=np.float64).reshape(len(lines), 3)
        if np.isfinite(out).all():
            return out
    except ValueError:
        pass
    rows = [(n + 1, line) for n, line in enumerate(_lines(path)) if line.startswith(b"v ")]
    return _floats(path, rows, 3, "vertex")


def read_obj(path: str | Path) -> ObjMesh:
    """Read vertices, uvs, polygons and material assignments; errors name the file and line."""
    path = Path(path)
    v_rows, vt_rows = [], []
    corner_vertex, corner_uv, sizes, poly_mat = [], [], [], []
    materials: list[str] = []
    current = -1
    for n, line in enumerate(_lines(path)):
        if line.startswith(b"v "):
            v_rows.append((n + 1, line))
        elif line.startswith(b"vt "):
            vt_rows.append((n + 1, line))
        elif line.startswith(b"usemtl"):
            name = line[6:].strip().decode(errors="replace")
            if name not in materials:
                materials.append(name)
            current = materials.index(name)
        elif line.startswith(b"f "):
            corners = line.split()[1:]
            if len(corners) < 3:
                raise MlafaceError(f"{path}, line {n + 1}: polygon with fewer than 3 corners")
            try:
                for c in corners:
                    parts = c.split(b"/")
                    corner_vertex.append(int(parts[0]) - 1)
                    corner_uv.append(int(parts[1]) - 1 if len(parts) > 1 and parts[1] else -1)
            except ValueError:
                raise MlafaceError(
                    f"{path}, line {n + 1}: bad face line {line[:60].decode(errors='replace')!r}"
                ) from None
            sizes.append(len(corners))
            poly_mat.append(current)
    if not v_rows:
        raise MlafaceError(f"{path}: no vertices (not an OBJ file?)")
    if not sizes:
        raise MlafaceError(f"{path}: no polygons (file truncated or not a mesh?)")
    vertices = _floats(path, v_rows, 3, "vertex")
    uvs = _floats(path, vt_rows, 2, "uv") if vt_rows else np.zeros((0, 2))
    corner_vertex_a = np.asarray(corner_vertex, dtype=np.int64)
    corner_uv_a = np.asarray(corner_uv, dtype=np.int64)
    if corner_vertex_a.min() < 0 or corner_vertex_a.max() >= len(vertices):
        raise MlafaceError(
            f"{path}: a polygon refers to a vertex outside 1..{len(vertices)} "
            f"(relative indices are not supported; file truncated?)"
        )
    if corner_uv_a.min() < 0 or corner_uv_a.max() >= len(uvs):
        raise MlafaceError(f"{path}: a polygon corner has no uv or refers to a uv outside 1..{len(uvs)}")
    return ObjMesh(
        vertices=vertices,
        uvs=uvs,
        corner_vertex=corner_vertex_a,
        corner_uv=corner_uv_a,
        polygon_sizes=np.asarray(sizes, dtype=np.int64),
        polygon_material=np.asarray(poly_mat, dtype=np.int64),
        materials=tuple(materials),
    )


def write_obj(r: FaceResult, path: str | Path) -> list[Path]:
    """path.obj with path.mtl and path_texture.png; the expression of the photo applied. Returns the files."""
    path = Path(path)
    mtl, png = path.with_suffix(".mtl"), path.with_name(f"{path.stem}_texture.png")
    verts = r.expressed_vertices()
    keep = r.exported_polygons()
    sizes, ends = r.polygon_sizes.tolist(), np.cumsum(r.polygon_sizes).tolist()
    corners = [f"{v}/{c}" for c, v in enumerate((r.corner_vertex + 1).tolist(), start=1)]  # OBJ counts from 1
    lines = [f"# mlaface {r.meta.get('mlaface_version', '')}: {Path(r.photo).name}, metres, y up",
             f"mtllib {mtl.name}"]
    lines += map("v {:.6f} {:.6f} {:.6f}".format, *verts.T.tolist())
    lines += map("vt {:.6f} {:.6f}".format, *r.corner_uv.T.tolist())  # UDIM u kept; the face tile is 1001
    for m, name in enumerate(r.material_names):
        polys = np.flatnonzero(keep & (r.polygon_material == m)).tolist()
        if not polys:
            continue
        lines.append(f"usemtl {name}")
        lines += ["f " + " ".join(corners[ends[p] - sizes[p]:ends[p]]) for p in polys]
    materials = []
    for m, name in enumerate(r.material_names):
        if not r.role(m).exported:
            continue
        colour = r.colour(m)
        materials += [f"newmtl {name}", f"Kd {colour[0]:.3f} {colour[1]:.3f} {colour[2]:.3f}", "Ks 0.05 0.05 0.05",
                      "Ns 20", "illum 2", f"d {r.opacity(m):g}"]
        if r.is_textured(m):
            materials += ["Kd 1 1 1", f"map_Kd {png.name}"]
    write_bytes_atomic(png, r.texture_png)
    write_bytes_atomic(mtl, ("\n".join(materials) + "\n").encode())
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    return [path, mtl, png]
