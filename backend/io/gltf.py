"""glTF binary (.glb) of a FaceResult: one mesh with ARKit-named morph targets, the face texture embedded, and with an
animation track the morph weights, head pose and camera keyed. Standard library and numpy only.

Geometry is in model space (metres, y up, the face looking down +z; glTF's frame), not posed: the pose belongs to
the scene (the node's extras; the Blender importer applies it). Materials that io.parts does not export (the
see-through eye layers) are left out, so skin reads opaque in any renderer.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from .animation import AnimationTrack
from .atomic import write_bytes_atomic
from .errors import MlafaceError
from .face_result import FaceResult
from .model_file import fan_triangulate


def mesh_arrays(r: FaceResult):
    """Triangles of the exported parts with vertices split where UVs differ (glTF wants one UV per vertex).
    Returns (vertex ids [N], uvs [N, 2], triangles [T, 3] into N, per-triangle material [T])."""
    corners, poly = fan_triangulate(r.polygon_sizes)
    keep = r.exported_polygons()[poly]
    corners, poly = corners[keep], poly[keep]
    # one glTF vertex per distinct (vertex, uv) pair, ordered by vertex, then u, then v: the UVs' float32 bits
    # (u, v >= 0: bits sort like the numbers) number the distinct UVs, and vertex x their count + that number is
    # one integer key (1-D sorts are many times faster than np.unique over rows)
    uv = np.ascontiguousarray(r.corner_uv, dtype=np.float32).view(np.uint32).astype(np.uint64)
    uv_ids, uv_id = np.unique((uv[:, 0] << np.uint64(32)) | uv[:, 1], return_inverse=True)
    key = r.corner_vertex.astype(np.int64) * len(uv_ids) + uv_id.reshape(-1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
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

    With a track (io/animation.py): an animation "mlaface" whose channels key the morph weights and the
    head node's rotation and translation at the track's times (the head in camera space), and a camera node at
    the origin with the photo camera's vertical field of view (glTF cameras look down -z, +y up, as ours)."""
    path = Path(path)
    vid, uv, tris, tri_mat = mesh_arrays(r)
    positions = r.vertices[vid].astype(np.float32)
    uv_out = np.stack([uv[:, 0] - np.floor(uv[:, 0]), 1 - uv[:, 1]], 1).astype(np.float32)  # glTF: v down
    blob = _Blob()
    views, accessors = [], []

    def add(data: np.ndarray, target: int | None, component: int, kind: str, minmax: bool = False,
            bounds: tuple[np.ndarray, np.ndarray] | None = None) -> int:
        """Store data; -> its accessor. minmax: with its min and max (given as bounds when already known)."""
        view = {"buffer": 0, "byteOffset": blob.append(data), "byteLength": data.nbytes}
        if target:
            view["target"] = target
        views.append(view)
        acc = {"bufferView": len(views) - 1, "componentType": component, "count": len(data), "type": kind}
        if minmax or bounds is not None:
            low, high = bounds if bounds is not None else (data.min(0), data.max(0))
            acc["min"], acc["max"] = np.atleast_1d(low).tolist(), np.atleast_1d(high).tolist()
        accessors.append(acc)
        return len(accessors) - 1

    pos_acc = add(positions, 34962, 5126, "VEC3", True)
    uv_acc = add(uv_out, 34962, 5126, "VEC2")
    deltas = r.expression_deltas[:, vid].astype(np.float32)  # [E, N, 3], one gather for all targets
    low, high = deltas.min(1), deltas.max(1)
    targets = [{"POSITION": add(d, 34962, 5126, "VEC3", bounds=(lo, hi))}
               for d, lo, hi in zip(deltas, low, high, strict=True)]
    image_bytes = r.texture_png
    views.append({"buffer": 0, "byteOffset": blob.append(image_bytes), "byteLength": len(image_bytes)})
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
        "accessors": accessors, "bufferViews": views, "buffers": [{"byteLength": blob.size}],
    }
    if extra:
        gltf["animations"], gltf["cameras"] = extra["animations"], extra["cameras"]
        gltf["nodes"].append(extra["camera_node"])
        gltf["scenes"][0]["nodes"].append(1)
    text = json.dumps(gltf).encode()
    text += b" " * (-len(text) % 4)
    blob.pad()
    length = 12 + 8 + len(text) + 8 + blob.size
    head = struct.pack("<4sII", b"glTF", 2, length) + struct.pack("<I4s", len(text), b"JSON") + text
    write_bytes_atomic(path, b"".join([head, struct.pack("<I4s", blob.size, b"BIN\0"), *blob.parts]))
    return path


class _Blob:
    """The binary chunk as a list of parts, each 4-byte aligned, joined once when the file is written."""

    def __init__(self):
        self.parts: list = []
        self.size = 0

    def pad(self) -> None:
        if self.size % 4:
            self.parts.append(b"\0" * (-self.size % 4))
            self.size += -self.size % 4

    def append(self, data) -> int:
        """data: a C-contiguous array or bytes -> its byte offset."""
        self.pad()
        offset = self.size
        part = data if isinstance(data, bytes) else np.ascontiguousarray(data).data.cast("B")
        self.parts.append(part)
        self.size += len(part)
        return offset


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
