"""FaceResult -> Blender data. Reading and checking the file is backend/io/face_result.py's job (numpy only); this
module builds: a mesh with the model's quads and UVs, materials (the face texture packed into the .blend; plain
colours for eyes, teeth, mouth; the see-through eye helper layers left out), 53 ARKit-named shape keys with the
photo's weights (Basis = the person's neutral face), the head pose on the object transform and, optionally, a camera
matched to the photo with the photo as its background.

Frames: mlaface's model and camera spaces are y-up (backend/render/camera.py); Blender is z-up. Blender world = camera
space turned +90 degrees about x, so the matched camera sits at the origin looking along +y, and a head's mesh is
stored upright (z up, face towards -y, Blender's front view).
"""

from __future__ import annotations

import math
from pathlib import Path

import bpy
import numpy as np
from mathutils import Matrix

from .backend.rig.retarget import Z_UP_FROM_Y_UP

Y_UP_TO_Z_UP = Matrix(Z_UP_FROM_Y_UP.tolist()).to_4x4()  # the one convention, backend/rig/retarget.py


def _to_z_up(v: np.ndarray) -> np.ndarray:
    """[N, 3] y-up -> z-up: (x, y, z) -> (x, -z, y)."""
    return v @ Z_UP_FROM_Y_UP.T


class Created:
    """Datablocks made during one import, removed again if the import fails (the scene stays as it was)."""

    def __init__(self):
        self.items: list = []

    def add(self, block):
        self.items.append(block)
        return block

    def remove_all(self) -> None:
        for block in reversed(self.items):  # objects before the data they use
            getattr(bpy.data, _DATA[block.id_type]).remove(block)
        self.items.clear()


_DATA = {"OBJECT": "objects", "MESH": "meshes", "MATERIAL": "materials", "IMAGE": "images", "CAMERA": "cameras",
         "COLLECTION": "collections", "ACTION": "actions", "MOVIECLIP": "movieclips"}


def _material(result, m: int, texture_image, created: Created):
    mat = created.add(bpy.data.materials.new(name=f"mlaface_{result.material_names[m]}"))
    mat.use_nodes = True
    bsdf = mat.node_tree.nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = 0.55
    if result.is_textured(m):
        node = mat.node_tree.nodes.new("ShaderNodeTexImage")
        node.image = texture_image
        mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        bsdf.inputs["Base Color"].default_value = (*result.colour(m), 1.0)
    alpha = result.opacity(m)
    if alpha < 1:
        bsdf.inputs["Alpha"].default_value = alpha
        mat.surface_render_method = "BLENDED"
    return mat


def _texture_image(result, name: str, created: Created):
    t = result.texture.shape[0]
    image = created.add(bpy.data.images.new(f"{name}_texture", t, t, alpha=False))
    rgba = np.concatenate([result.texture[::-1].astype(np.float32) / 255, np.ones((t, t, 1), np.float32)], 2)
    image.pixels.foreach_set(rgba.ravel())  # Blender's rows start at the bottom
    image.pack()
    return image


def build_head(result, name: str, collection, created: Created, posed: bool = True):
    """The head object of one FaceResult, linked into collection."""
    keep_poly = result.exported_polygons()  # the see-through eye layers are left out (backend/io/parts.py)
    keep_corner = np.repeat(keep_poly, result.polygon_sizes)
    used = np.unique(result.corner_vertex[keep_corner])
    remap = np.full(len(result.vertices), -1, np.int64)
    remap[used] = np.arange(len(used))
    sizes = result.polygon_sizes[keep_poly]
    corners = remap[result.corner_vertex[keep_corner]]

    mesh = created.add(bpy.data.meshes.new(name))
    mesh.vertices.add(len(used))
    mesh.vertices.foreach_set("co", _to_z_up(result.vertices[used]).astype(np.float32).ravel())
    mesh.loops.add(len(corners))
    mesh.loops.foreach_set("vertex_index", corners.astype(np.int32))
    mesh.polygons.add(len(sizes))
    mesh.polygons.foreach_set("loop_start", np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32))
    mesh.polygons.foreach_set("loop_total", sizes.astype(np.int32))
    mesh.polygons.foreach_set("use_smooth", np.ones(len(sizes), bool))
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", result.corner_uv[keep_corner].astype(np.float32).ravel())

    texture = _texture_image(result, name, created)
    kept_materials = np.unique(result.polygon_material[keep_poly])
    for m in kept_materials:
        mesh.materials.append(_material(result, int(m), texture, created))
    slot = np.searchsorted(kept_materials, result.polygon_material[keep_poly])
    mesh.polygons.foreach_set("material_index", slot.astype(np.int32))
    mesh.update()
    mesh.validate()

    obj = created.add(bpy.data.objects.new(name, mesh))
    collection.objects.link(obj)
    obj.shape_key_add(name="Basis", from_mix=False)
    for e, key_name in enumerate(result.expression_names):
        key = obj.shape_key_add(name=str(key_name), from_mix=False)
        co = _to_z_up(result.vertices[used] + result.expression_deltas[e][used]).astype(np.float32)
        key.data.foreach_set("co", co.ravel())
        key.slider_min, key.slider_max = 0.0, 1.0
        key.value = float(result.expression_weights[e])
    if posed:
        obj.matrix_world = _world(result.rotation, result.translation)
    obj["mlaface_photo"] = result.photo
    obj["mlaface_face_index"] = int(result.face_index)
    quality = result.meta.get("fit_quality")
    if quality:  # how much to trust the fit (backend/reconstruct/pipeline.py: fit_quality)
        obj["mlaface_fit_quality"] = float(quality["score"])
    return obj


def _world(rotation: np.ndarray, translation: np.ndarray) -> Matrix:
    """The Blender world matrix of a head at camera-space pose (rotation [3, 3], translation [3] metres)."""
    pose = Matrix.Identity(4)
    pose.col[3][:3] = [float(v) for v in translation]
    for i in range(3):
        for j in range(3):
            pose[i][j] = float(rotation[i, j])
    return Y_UP_TO_Z_UP @ pose @ Y_UP_TO_Z_UP.inverted()


def build_camera(result, name: str, collection, created: Created):
    """A camera at the origin with the photo's field of view and the photo as its background."""
    H, W = (int(v) for v in result.image_size)
    data = created.add(bpy.data.cameras.new(f"{name}_camera"))
    data.sensor_fit = "AUTO"
    data.sensor_width = 36.0
    data.lens = float(result.focal) * 36.0 / max(H, W)
    if Path(result.photo).is_file():
        bg = data.background_images.new()
        bg.image = created.add(bpy.data.images.load(result.photo, check_existing=False))
        data.show_background_images = True
    cam = created.add(bpy.data.objects.new(f"{name}_camera", data))
    cam.matrix_world = Y_UP_TO_Z_UP.copy()
    collection.objects.link(cam)
    cam["mlaface_resolution"] = [W, H]
    return cam


def import_results(results: list, names: list[str], collection_name: str, with_camera: bool,
                   grid: bool) -> list:
    """Build every result into a new collection of the active scene: posed with a matched camera (one face), or
    upright in a grid (batches). All or nothing: on any failure the created data is removed and the error raised."""
    created = Created()
    try:
        collection = created.add(bpy.data.collections.new(collection_name))
        bpy.context.scene.collection.children.link(collection)
        objects = []
        cols = max(1, math.ceil(math.sqrt(len(results))))
        for i, (result, name) in enumerate(zip(results, names, strict=True)):
            obj = build_head(result, name, collection, created, posed=not grid)
            if grid:
                obj.location = (0.35 * (i % cols), 0.0, -0.45 * (i // cols))
            if with_camera and not grid:
                build_camera(result, name, collection, created)
            objects.append(obj)
        return objects
    except Exception:
        created.remove_all()
        raise


def fcurves(id_data):
    """The F-curves animating one ID. Blender 4.4+ keeps them per action slot (an object and its shape keys may
    share one action, each in its own slot); older Blenders have one list per action."""
    from bpy_extras import anim_utils

    anim = id_data.animation_data
    if hasattr(anim_utils, "action_get_channelbag_for_slot"):
        return anim_utils.action_get_channelbag_for_slot(anim.action, anim.action_slot).fcurves
    return anim.action.fcurves


def scene_frames(times: np.ndarray, fps: float, start: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Track times [N] (seconds) -> (scene frame numbers [K], increasing, at the scene's rate (the clip's), the
    first at start; the track rows [K] they take). Where a variable frame rate puts two samples on one scene frame,
    the one nearer to it in time is kept; frames between samples are left to the curves' interpolation."""
    exact = (times - times[0]) * fps
    frames = np.round(exact).astype(int)
    order = np.lexsort((np.abs(exact - frames), frames))
    unique, first = np.unique(frames[order], return_index=True)
    return start + unique, order[first]


def import_animation(result, track, name: str) -> object:
    """The clip's head (FaceResult) with the track (backend/io/animation.py) as keyframes: every shape key's value
    and the object's location and rotation at the clip's frames, the scene's frame rate and range set to the
    clip's, and a camera matched to it with the clip as its background. All or nothing, as import_results."""
    scene = bpy.context.scene
    created = Created()
    before = (scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end)
    try:
        collection = created.add(bpy.data.collections.new(f"mlaface {name}"))
        scene.collection.children.link(collection)
        obj = build_head(result, name, collection, created, posed=True)
        fps = float(track.fps)
        scene.render.fps = max(1, round(fps))
        scene.render.fps_base = scene.render.fps / fps
        frames, rows = scene_frames(track.times, fps)
        keys = obj.data.shape_keys
        for e, key_name in enumerate(track.expression_names):
            path = f'key_blocks["{key_name}"].value'
            keys.keyframe_insert(path, frame=int(frames[0]))
            curve = fcurves(keys).find(path)
            curve.keyframe_points.add(len(frames) - 1)
            co = np.stack([frames, track.weights[rows, e]], 1).astype(np.float32)
            curve.keyframe_points.foreach_set("co", co.ravel())
            curve.keyframe_points.foreach_set("interpolation", np.full(len(frames), 1, np.int32))  # LINEAR
            curve.update()
        obj.rotation_mode = "QUATERNION"
        for i, frame in zip(rows, frames, strict=True):
            obj.matrix_world = _world(track.rotation[i], track.translation[i])
            obj.keyframe_insert("location", frame=int(frame))
            obj.keyframe_insert("rotation_quaternion", frame=int(frame))
        for action in {keys.animation_data.action, obj.animation_data.action}:
            created.add(action)
        scene.frame_start, scene.frame_end = int(frames[0]), int(frames[-1])
        camera = build_camera(result, name, collection, created)
        source = Path(track.source)
        if source.is_file() or source.is_dir():
            first = source if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())[0]
            clip = created.add(bpy.data.movieclips.load(str(first), check_existing=False))
            bg = camera.data.background_images[0] if camera.data.background_images else \
                camera.data.background_images.new()
            bg.source, bg.clip = "MOVIE_CLIP", clip
            camera.data.show_background_images = True
        scene.camera = camera
        scene.frame_set(int(frames[0]))
        return obj
    except Exception:
        created.remove_all()
        scene.render.fps, scene.render.fps_base, scene.frame_start, scene.frame_end = before
        raise
