"""Exporters of a FaceResult: OBJ + MTL + PNG, glTF binary (.glb) with ARKit-named morph targets, and an overlay
PNG (the fitted mesh and the landmarks over the photo). Every file is written to a temporary name and renamed.

Geometry is exported in model space (metres, y up, the face looking down +z; glTF's frame), not posed: the pose
belongs to the scene (the Blender importer applies it). The see-through helper layers of the eyes (part
"eye_helper": tear film, occlusion shadow, cornea) are left out so that skin reads opaque in any renderer; the
untextured lash cards are faint (FaceResult.opacity).
"""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .animation import AnimationTrack
from .atomic import write_bytes_atomic
from .errors import MlafaceError
from .face_result import FaceResult
from .model_file import fan_triangulate

EXPORT_PARTS = ("skin", "mouth", "teeth", "eye", "eyelashes")


def _png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _exported_polygons(r: FaceResult) -> np.ndarray:
    """[F] bool: polygons whose material part is exported."""
    return np.isin(r.material_parts[r.polygon_material], EXPORT_PARTS)


def write_obj(r: FaceResult, path: str | Path) -> list[Path]:
    """path.obj with path.mtl and path_texture.png; the expression of the photo applied. Returns the files."""
    path = Path(path)
    mtl, png = path.with_suffix(".mtl"), path.with_name(f"{path.stem}_texture.png")
    verts = r.expressed_vertices()
    keep = _exported_polygons(r)
    starts = np.concatenate([[0], np.cumsum(r.polygon_sizes)[:-1]])
    lines = [f"# mlaface {r.meta.get('mlaface_version', '')}: {Path(r.photo).name}, metres, y up",
             f"mtllib {mtl.name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in r.corner_uv]  # UDIM u kept; the face tile is 1001 (u in 0..1)
    for m, name in enumerate(r.material_names):
        polys = np.flatnonzero(keep & (r.polygon_material == m))
        if not len(polys):
            continue
        lines.append(f"usemtl {name}")
        for p in polys:
            c = np.arange(starts[p], starts[p] + r.polygon_sizes[p])
            lines.append("f " + " ".join(f"{r.corner_vertex[i] + 1}/{i + 1}" for i in c))
    materials = []
    for m, name in enumerate(r.material_names):
        part = str(r.material_parts[m])
        if part not in EXPORT_PARTS:
            continue
        colour = r.colour(m)
        materials += [f"newmtl {name}", f"Kd {colour[0]:.3f} {colour[1]:.3f} {colour[2]:.3f}", "Ks 0.05 0.05 0.05",
                      "Ns 20", "illum 2", f"d {r.opacity(m):g}"]
        if r.is_textured(m):
            materials += ["Kd 1 1 1", f"map_Kd {png.name}"]
    write_bytes_atomic(png, _png_bytes(r.texture))
    write_bytes_atomic(mtl, ("\n".join(materials) + "\n").encode())
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode())
    return [path, mtl, png]


def _gltf_mesh_data(r: FaceResult):
    """Triangles of the exported parts with vertices split where UVs differ (glTF wants one UV per vertex).
    Returns (vertex ids [N], uvs [N, 2], triangles [T, 3] into N, per-triangle material [T])."""
    corners, poly = fan_triangulate(r.polygon_sizes)
    keep = _exported_polygons(r)[poly]
    corners, poly = corners[keep], poly[keep]
    # one glTF vertex per distinct (vertex, uv) pair
    key = np.stack([r.corner_vertex.astype(np.float64), r.corner_uv[:, 0], r.corner_uv[:, 1]], 1)
    _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
    return r.corner_vertex[first], r.corner_uv[first], inverse.reshape(-1)[corners], r.polygon_material[poly]


def rotation_to_quaternion(r: np.ndarray) -> np.ndarray:
    """[N, 3, 3] rotation matrices -> [N, 4] unit quaternions (x, y, z, w), glTF's order, w >= 0."""
    r = np.asarray(r, dtype=np.float64)
    w = np.sqrt(np.maximum(0, 1 + r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2])) / 2
    x = np.sqrt(np.maximum(0, 1 + r[:, 0, 0] - r[:, 1, 1] - r[:, 2, 2])) / 2
    y = np.sqrt(np.maximum(0, 1 - r[:, 0, 0] + r[:, 1, 1] - r[:, 2, 2])) / 2
    z = np.sqrt(np.maximum(0, 1 - r[:, 0, 0] - r[:, 1, 1] + r[:, 2, 2])) / 2
    x = np.copysign(x, r[:, 2, 1] - r[:, 1, 2])
    y = np.copysign(y, r[:, 0, 2] - r[:, 2, 0])
    z = np.copysign(z, r[:, 1, 0] - r[:, 0, 1])
    q = np.stack([x, y, z, w], 1)
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def write_glb(r: FaceResult, path: str | Path, track: AnimationTrack | None = None) -> Path:
    """A .glb: one mesh, one primitive per material, 53 morph targets named in mesh.extras.targetNames with the
    photo's weights, the face texture embedded; the pose and camera in the node's extras.

    With a track (backend/io/animation.py): an animation "mlaface" whose channels key the morph weights and the
    head node's rotation and translation at the track's times (the head in camera space), and a camera node at
    the origin with the photo camera's vertical field of view (glTF cameras look down -z, +y up, as ours)."""
    path = Path(path)
    vid, uv, tris, tri_mat = _gltf_mesh_data(r)
    positions = r.vertices[vid].astype(np.float32)
    uv_out = np.stack([uv[:, 0] - np.floor(uv[:, 0]), 1 - uv[:, 1]], 1).astype(np.float32)  # glTF: v down
    blob = bytearray()
    views, accessors = [], []

    def add(data: np.ndarray, target: int | None, component: int, kind: str, minmax: bool = False) -> int:
        while len(blob) % 4:
            blob.append(0)
        view = {"buffer": 0, "byteOffset": len(blob), "byteLength": data.nbytes}
        if target:
            view["target"] = target
        blob.extend(data.tobytes())
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": len(data), "type": kind}
        if minmax:
            acc["min"], acc["max"] = np.atleast_1d(data.min(0)).tolist(), np.atleast_1d(data.max(0)).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    pos_acc = add(positions, 34962, 5126, "VEC3", True)
    uv_acc = add(uv_out, 34962, 5126, "VEC2")
    targets = [{"POSITION": add(np.ascontiguousarray(d[vid], dtype=np.float32), 34962, 5126, "VEC3", True)}
               for d in r.expression_deltas]
    image_bytes = _png_bytes(r.texture)
    while len(blob) % 4:
        blob.append(0)
    views.append({"buffer": 0, "byteOffset": len(blob), "byteLength": len(image_bytes)})
    blob.extend(image_bytes)
    image_view = len(views) - 1
    materials, primitives = [], []
    for m, name in enumerate(r.material_names):
        sel = tris[tri_mat == m]
        if not len(sel):
            continue
        mat = {"name": str(name), "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 0.6,
                                                            "baseColorFactor": [*r.colour(m), r.opacity(m)]}}
        if r.opacity(m) < 1:
            mat["alphaMode"] = "BLEND"
        if r.is_textured(m):
            mat["pbrMetallicRoughness"]["baseColorTexture"] = {"index": 0}
            mat["pbrMetallicRoughness"]["baseColorFactor"] = [1.0, 1.0, 1.0, 1.0]
        materials.append(mat)
        idx = add(sel.astype(np.uint32).reshape(-1), 34963, 5125, "SCALAR")
        primitives.append({"attributes": {"POSITION": pos_acc, "TEXCOORD_0": uv_acc}, "indices": idx,
                           "material": len(materials) - 1, "targets": targets})
    names = [str(n) for n in r.expression_names]
    extra = _animation(track, add, r) if track is not None else {}
    gltf = {
        "asset": {"version": "2.0", "generator": f"mlaface {r.meta.get('mlaface_version', '')}"},
        "scene": 0, "scenes": [{"nodes": [0]}],
        "nodes": [{"name": Path(r.photo).stem, "mesh": 0, "extras": {
            "mlaface_pose": {"rotation": r.rotation.tolist(), "translation": r.translation.tolist()},
            "mlaface_camera": {"focal_px": r.focal, "image_size": r.image_size.tolist()}}}],
        "meshes": [{"name": Path(r.photo).stem, "primitives": primitives,
                    "weights": [float(w) for w in r.expression_weights], "extras": {"targetNames": names}}],
        "materials": materials,
        "textures": [{"source": 0, "sampler": 0}], "samplers": [{"magFilter": 9729, "minFilter": 9987}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": len(blob)}],
    }
    if extra:
        gltf["animations"], gltf["cameras"] = extra["animations"], extra["cameras"]
        gltf["nodes"].append(extra["camera_node"])
        gltf["scenes"][0]["nodes"].append(1)
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    while len(blob) % 4:
        blob.append(0)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(blob), b"BIN\0") + bytes(blob)
    write_bytes_atomic(path, struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body)
    return path


def _animation(track: AnimationTrack, add, r: FaceResult) -> dict:
    """The glTF animation, camera and camera node for a track; `add` stores an array and returns its accessor."""
    names = [str(n) for n in r.expression_names]
    if [str(n) for n in track.expression_names] != names:
        raise MlafaceError("the animation's expression names differ from the head's")
    track.check()
    times = add(track.times.astype(np.float32), None, 5126, "SCALAR", True)
    weights = add(track.weights.astype(np.float32).reshape(-1), None, 5126, "SCALAR")
    rotation = add(rotation_to_quaternion(track.rotation).astype(np.float32), None, 5126, "VEC4")
    translation = add(track.translation.astype(np.float32), None, 5126, "VEC3")
    samplers = [{"input": times, "output": out, "interpolation": "LINEAR"} for out in (weights, rotation, translation)]
    channels = [{"sampler": i, "target": {"node": 0, "path": p}}
                for i, p in enumerate(("weights", "rotation", "translation"))]
    H, W = (int(v) for v in r.image_size)
    camera = {"type": "perspective", "perspective": {"yfov": 2 * math.atan(H / 2 / r.focal), "aspectRatio": W / H,
                                                     "znear": 0.01, "zfar": 100.0}}
    return {"animations": [{"name": "mlaface", "samplers": samplers, "channels": channels}],
            "cameras": [camera], "camera_node": {"name": "camera", "camera": 0}}


def write_overlay(r: FaceResult, photo: np.ndarray, path: str | Path, size: int = 768) -> Path:
    """A square window of the photo around the face (2.5 times the landmarks' box) with the fitted, shaded skin
    blended over it, its outline in green, the detected landmarks in red and the fitted ones in blue."""
    import torch

    from ..detect.align import crop_from_box, landmark_box
    from ..render.camera import crop_camera, project
    from ..render.raster import interpolate, rasterize
    from ..render.shading import ambient_sh, shade, vertex_normals

    path = Path(path)
    window = crop_from_box(photo, landmark_box(r.landmarks), size=size, scale=2.5)
    k, centre = crop_camera(photo.shape[:2], window.to_photo)
    principal = torch.tensor([centre])
    vid, _, tris, tri_mat = _gltf_mesh_data(r)
    skin_tris = torch.from_numpy(tris[r.material_parts[tri_mat] == "skin"].astype(np.int64))
    verts = torch.from_numpy(r.expressed_vertices()[vid]).float()
    cam = verts @ torch.from_numpy(r.rotation).float().T + torch.from_numpy(r.translation).float()
    frags = rasterize(project(cam[None], r.focal / k, (size, size), principal), skin_tris, (size, size),
                      cull_backfaces=True)
    normals = interpolate(vertex_normals(cam[None], skin_tris), frags, skin_tris)
    sh = ambient_sh(0.55)
    sh[0, [2, 11, 20]] = 0.45  # light from the camera
    grey = shade(torch.full_like(normals, 0.85), torch.nn.functional.normalize(normals, dim=-1), sh)
    grey, mask = grey.clamp(0, 1)[0].numpy(), frags.mask[0].numpy()
    out = window.image.astype(np.float32) / 255
    out[mask] = 0.45 * out[mask] + 0.55 * grey[mask]
    edge = mask & ~(np.roll(mask, 1, 0) & np.roll(mask, -1, 0) & np.roll(mask, 1, 1) & np.roll(mask, -1, 1))
    out[edge] = (0.1, 0.9, 0.2)
    img = Image.fromarray((out * 255).round().astype(np.uint8))
    d = ImageDraw.Draw(img)
    for pts, colour in ((r.landmarks, (255, 40, 40)), (r.fitted_landmarks, (60, 120, 255))):
        for x, y in window.points_to_crop(pts.astype(np.float64)):
            d.ellipse([x - 2.5, y - 2.5, x + 2.5, y + 2.5], fill=colour)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    write_bytes_atomic(path, buf.getvalue())
    return path
