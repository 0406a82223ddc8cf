"""The Blender add-on in real Blender (bpy 4.5, headless): build the zip, install and enable it, run its operators
on real photos through the real worker, check what lands in the scene, export to glTF and FBX."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import SHARED_DATA

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="mlaface-blender-"))
bpy = pytest.importorskip("bpy", reason="bpy is not installed (extra: blender)")
pytest.importorskip("dlib", reason="the dlib extra is not installed")
FACES = SHARED_DATA / "faces"
ADDON = "bl_ext.user_default.mlaface"


@pytest.fixture(scope="module")
def addon(real_model_path, tmp_path_factory):
    if not FACES.is_dir():
        pytest.skip(f"{FACES} is absent")
    from build_addon import build, validate

    zip_path = build(tmp_path_factory.mktemp("dist"))
    assert validate(zip_path).startswith("valid")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    assert ADDON in bpy.context.preferences.addons
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.python_path, prefs.model_path = sys.executable, str(real_model_path)
    prefs.fit_steps, prefs.texture_size, prefs.device = 30, 512, "cpu"
    yield prefs
    bpy.ops.preferences.addon_disable(module=ADDON)


def scene_names() -> set[str]:
    return {o.name for o in bpy.data.objects}


def test_reconstruct_one_photo(addon):
    assert bpy.ops.mlaface.reconstruct(filepath=str(FACES / "takeo.ppm")) == {"FINISHED"}
    head, camera = bpy.data.objects["takeo"], bpy.data.objects["takeo_camera"]
    mesh = head.data
    assert len(mesh.polygons) > 25000 and sum(p.loop_total == 4 for p in mesh.polygons) > 20000  # quads kept
    assert mesh.uv_layers.active is not None and len(mesh.uv_layers.active.data) == len(mesh.loops)
    keys = mesh.shape_keys.key_blocks
    assert keys[0].name == "Basis" and len(keys) == 54
    assert "jawOpen" in keys and "eyeBlinkLeft" in keys and all(0 <= k.value <= 1 for k in keys[1:])
    face = mesh.materials["mlaface_M_Face"]
    images = [n.image for n in face.node_tree.nodes if n.type == "TEX_IMAGE"]
    assert len(images) == 1 and tuple(images[0].size) == (512, 512) and images[0].packed_file is not None
    assert not any(k in m.name for m in mesh.materials for k in ("EyeOcclusion", "Lacrimal", "Cornea"))  # see-through
    lashes = mesh.materials["mlaface_M_EyeLashes"].node_tree.nodes["Principled BSDF"].inputs["Alpha"].default_value
    assert lashes < 0.5 and "mlaface_M_PupilLeft" in mesh.materials.keys()
    # pose: in front of the matched camera (which looks along +y), upright, and the camera has the photo's view
    assert head.location.y > 0.2 and head.matrix_world.col[2][2] > 0.8
    assert camera.type == "CAMERA" and camera.data.lens > 0 and camera.data.background_images[0].image is not None
    assert Path(head["mlaface_photo"]).name == "takeo.ppm" and 0 < head["mlaface_fit_quality"] <= 1


def test_batch_with_a_bad_file(addon, tmp_path):
    for name in ("takeo.ppm", "lenna.png"):
        shutil.copy(FACES / name, tmp_path / name)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    before = scene_names()
    assert bpy.ops.mlaface.batch_import(directory=str(tmp_path)) == {"FINISHED"}  # the error is a warning
    new = scene_names() - before
    assert len(new) == 2 and all(bpy.data.objects[n].type == "MESH" for n in new)  # no cameras in a batch
    collection = bpy.data.collections["mlaface batch of 2"]
    assert {o.name for o in collection.objects} == new
    xs = sorted(round(bpy.data.objects[n].location.x, 2) for n in new)
    assert xs[0] != xs[1]  # laid out in a grid


def test_errors_leave_the_scene_as_it_was(addon, tmp_path):
    before = (scene_names(), len(bpy.data.meshes), len(bpy.data.images), len(bpy.data.collections))
    wall = tmp_path / "wall.png"
    shutil.copy(FACES / "takeo.ppm", tmp_path / "x.ppm")
    from PIL import Image

    Image.new("RGB", (300, 200), (128, 128, 128)).save(wall)
    with pytest.raises(RuntimeError, match="no face was reconstructed.*wall.png: no face found"):
        bpy.ops.mlaface.reconstruct(filepath=str(wall))
    python = addon.python_path
    addon.python_path = str(tmp_path / "no-python")
    try:
        with pytest.raises(RuntimeError, match="Python interpreter not found"):
            bpy.ops.mlaface.reconstruct(filepath=str(tmp_path / "x.ppm"))
    finally:
        addon.python_path = python
    assert (scene_names(), len(bpy.data.meshes), len(bpy.data.images), len(bpy.data.collections)) == before


def test_shape_keys_survive_gltf_and_fbx(addon, tmp_path):
    if "takeo" not in bpy.data.objects:
        assert bpy.ops.mlaface.reconstruct(filepath=str(FACES / "takeo.ppm")) == {"FINISHED"}
    head = bpy.data.objects["takeo"]
    names = [k.name for k in head.data.shape_keys.key_blocks][1:]
    bpy.ops.object.select_all(action="DESELECT")
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    bpy.ops.export_scene.gltf(filepath=str(tmp_path / "t.glb"), use_selection=True, export_morph=True)
    bpy.ops.export_scene.fbx(filepath=str(tmp_path / "t.fbx"), use_selection=True)
    for path, importer in ((tmp_path / "t.glb", bpy.ops.import_scene.gltf), (tmp_path / "t.fbx",
                                                                           bpy.ops.import_scene.fbx)):
        before = scene_names()
        importer(filepath=str(path))
        imported = [bpy.data.objects[n] for n in scene_names() - before if bpy.data.objects[n].type == "MESH"]
        assert len(imported) == 1
        keys = [k.name for k in imported[0].data.shape_keys.key_blocks][1:]
        assert keys == names, path.suffix


def test_a_live_link_csv_onto_the_mlaface_head(addon, tmp_path):
    """The reconstructed head is an ARKit rig too: a CSV's whole browInnerUp spreads over its two halves."""
    import numpy as np

    from backend.io.animation import AnimationTrack
    from backend.io.live_link import write_live_link_csv
    from backend.rig.names import ARKIT_SHAPES

    if "takeo" not in bpy.data.objects:
        assert bpy.ops.mlaface.reconstruct(filepath=str(FACES / "takeo.ppm")) == {"FINISHED"}
    head = bpy.data.objects["takeo"]
    n = 40
    weights = np.zeros((n, 52), np.float32)
    weights[:, ARKIT_SHAPES.index("jawOpen")] = np.linspace(0, 1, n)
    weights[:, ARKIT_SHAPES.index("browInnerUp")] = 0.5
    track = AnimationTrack(fps=30.0, times=np.arange(n) / 30, frame_index=np.arange(n, dtype=np.int32),
                           expression_names=np.array(ARKIT_SHAPES), weights=weights,
                           rotation=np.tile(np.eye(3, dtype=np.float32), (n, 1, 1)),
                           translation=np.zeros((n, 3), np.float32), tracked=np.ones(n, bool), source="phone")
    csv = write_live_link_csv(track, tmp_path / "phone.csv")
    bpy.ops.object.select_all(action="DESELECT")
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    bpy.context.scene.render.fps, bpy.context.scene.render.fps_base = 30, 1.0
    bpy.context.scene.mlaface_drive.start_frame = 1
    assert bpy.ops.mlaface.import_live_link(filepath=str(csv)) == {"FINISHED"}
    from bl_ext.user_default.mlaface.importer import fcurves

    curves = fcurves(head.data.shape_keys)
    jaw = curves.find('key_blocks["jawOpen"].value').keyframe_points
    assert len(jaw) == n and jaw[-1].co[1] == pytest.approx(1.0) and round(jaw[-1].co[0]) == n
    for half in ("browInnerUpLeft", "browInnerUpRight"):
        assert {round(k.co[1], 3) for k in curves.find(f'key_blocks["{half}"].value').keyframe_points} == {0.5}
    assert head.mlaface_unmatched_targets == ""  # every one of the head's 53 keys is an ARKit shape of the CSV
    head.data.shape_keys.animation_data_clear()


@pytest.mark.slow
def test_animate_clip_keys_the_timeline(addon, real_model_path, tmp_path):
    pytest.importorskip("av", reason="PyAV (the video extra) is not installed")
    import json
    import math
    import struct

    from backend.clip.synthetic_clip import FPS, render_clip, truth_curves
    from backend.clip.video import write_video
    from backend.io.model_file import read_model
    from backend.model.albedo_model import AlbedoModel

    data = read_model(real_model_path)
    truth = truth_curves([str(n) for n in data.expression_names], n=20)
    clip = write_video(render_clip(data, AlbedoModel.load(), truth), tmp_path / "take.mp4", FPS)
    bpy.context.scene.render.fps = 24
    assert bpy.ops.mlaface.animate_clip(filepath=str(clip), smooth=0.0) == {"FINISHED"}
    scene, head = bpy.context.scene, bpy.data.objects["take"]
    assert scene.render.fps == 25 and (scene.frame_start, scene.frame_end) == (1, 20)
    from bl_ext.user_default.mlaface.importer import fcurves

    curves = fcurves(head.data.shape_keys)
    for name in ("jawOpen", "eyeBlinkLeft", "mouthSmileRight"):
        keys = curves.find(f'key_blocks["{name}"].value').keyframe_points
        assert [round(k.co[0]) for k in keys] == list(range(1, 21)), name
    assert all(0 <= k.co[1] <= 1 for c in curves for k in c.keyframe_points)
    location = fcurves(head).find("location", index=0)
    assert location is not None and len(location.keyframe_points) == 20
    # the head turns (truth: 0 to about 26 degrees of yaw over the 20 frames); the nose is model +z
    noses = []
    for frame in (1, 20):
        scene.frame_set(frame)
        noses.append(head.matrix_world.to_3x3().col[1].normalized() * -1)  # model +z is the mesh's -y (z-up)
    assert math.degrees(noses[0].angle(noses[1])) > 10
    camera = bpy.data.objects["take_camera"]
    assert scene.camera == camera and camera.data.background_images[0].source == "MOVIE_CLIP"
    # glTF export keeps the shape-key animation
    bpy.ops.object.select_all(action="DESELECT")
    head.select_set(True)
    bpy.context.view_layer.objects.active = head
    out = tmp_path / "anim.glb"
    bpy.ops.export_scene.gltf(filepath=str(out), use_selection=True, export_morph=True, export_animations=True)
    data = out.read_bytes()
    gltf = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    paths = {c["target"]["path"] for a in gltf.get("animations", []) for c in a["channels"]}
    assert "weights" in paths, paths


@pytest.mark.slow
def test_a_variable_frame_rate_clip_keys_its_real_times(addon, real_model_path, tmp_path):
    """Frames at irregular times (a phone's variable frame rate): keyframes land at each frame's real time on the
    scene's timeline; two frames on one scene frame keep the nearer one."""
    pytest.importorskip("av", reason="PyAV (the video extra) is not installed")
    from fractions import Fraction

    import av
    import numpy as np

    from backend.clip.synthetic_clip import render_clip, truth_curves
    from backend.io.model_file import read_model
    from backend.model.albedo_model import AlbedoModel

    stamps = [0, 40, 80, 90, 200, 240, 400]  # milliseconds
    data = read_model(real_model_path)
    names = [str(n) for n in data.expression_names]
    truth = truth_curves(names, n=len(stamps))
    truth["weights"][:] = 0
    truth["weights"][[1, 5], names.index("jawOpen")] = 0.6  # the mouth opens at 40 ms and at 240 ms
    frames = render_clip(data, AlbedoModel.load(), truth)
    clip = tmp_path / "vfr.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for ms, image in zip(stamps, frames, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = ms, Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert bpy.ops.mlaface.animate_clip(filepath=str(clip), smooth=0.0) == {"FINISHED"}
    scene, head = bpy.context.scene, bpy.data.objects["vfr"]
    fps = scene.render.fps / scene.render.fps_base
    exact = np.array(stamps) / 1000 * fps + 1
    want = sorted({round(x) for x in exact})
    from bl_ext.user_default.mlaface.importer import fcurves

    jaw = fcurves(head.data.shape_keys).find('key_blocks["jawOpen"].value').keyframe_points
    got = [round(k.co[0]) for k in jaw]
    assert got == want and (scene.frame_start, scene.frame_end) == (1, want[-1]), (got, want, fps)
    value = dict(zip(got, (k.co[1] for k in jaw), strict=True))
    assert value[round(exact[1])] > value[round(exact[0])] + 0.2  # the open mouths at their own times
    assert value[round(exact[5])] > value[round(exact[4])] + 0.2


def test_animate_a_bad_clip_changes_nothing(addon, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    scene = bpy.context.scene
    before = (scene_names(), len(bpy.data.actions), scene.render.fps, scene.frame_end)
    with pytest.raises(RuntimeError, match="the clip was not animated: .*not a readable video"):
        bpy.ops.mlaface.animate_clip(filepath=str(bad))
    assert (scene_names(), len(bpy.data.actions), scene.render.fps, scene.frame_end) == before
