"""Drive your own character in real Blender (bpy 4.5, headless): the add-on installed from its zip keys a clip's
track, a Live Link Face CSV and a head's expression onto meshes made here with ARKit shape keys in three naming
styles, and a head bone; the user's own action is kept; a malformed source changes nothing."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
from test_animation import euler

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="mlaface-blender-"))
bpy = pytest.importorskip("bpy", reason="bpy is not installed (extra: blender)")

from backend.io.animation import AnimationTrack, write_track  # noqa: E402
from backend.io.live_link import write_live_link_csv  # noqa: E402
from backend.rig.names import ARKIT_SHAPES  # noqa: E402

ADDON = "bl_ext.user_default.mlaface"
ICT = ["browInnerUpLeft", "browInnerUpRight", "cheekPuffLeft", "cheekPuffRight", "eyeBlinkLeft", "eyeBlinkRight",
       "jawOpen", "mouthSmileLeft", "mouthSmileRight", "tongueOut_never"]  # the last: no ARKit name
N = 12  # frames at 30 fps


@pytest.fixture(scope="module")
def addon(tmp_path_factory):
    from build_addon import build

    zip_path = build(tmp_path_factory.mktemp("dist"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    yield
    bpy.ops.preferences.addon_disable(module=ADDON)


def clip_track(n: int = N, fps: float = 30.0) -> AnimationTrack:
    """n frames at fps: the jaw opens, the left eye blinks on the 6th frame, the head turns 0 to 0.5 rad."""
    w = np.zeros((n, len(ICT)), np.float32)
    w[:, ICT.index("jawOpen")] = np.linspace(0, 0.9, n)
    w[:, ICT.index("eyeBlinkLeft")] = (np.arange(n) == 5)
    w[:, ICT.index("browInnerUpLeft")], w[:, ICT.index("browInnerUpRight")] = 0.2, 0.6
    yaw = np.linspace(0, 0.5, n)
    return AnimationTrack(fps=fps, times=np.arange(n) / fps, frame_index=np.arange(n, dtype=np.int32),
                          expression_names=np.array(ICT), weights=w,
                          rotation=euler(yaw, 0 * yaw, 0 * yaw).astype(np.float32),
                          translation=np.tile([0.0, 0.0, -0.6], (n, 1)).astype(np.float32),
                          tracked=np.ones(n, bool), source="take.mp4")


def rig(name: str, keys: list[str]):
    """A small mesh with a Basis and the named shape keys, each moving one vertex, selected and active."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(0, 0, 0), (1, 0, 0), (0, 0, 1), (1, 0, 1)], [], [(0, 1, 3, 2)])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    obj.shape_key_add(name="Basis")
    for k in keys:
        obj.shape_key_add(name=k).data[0].co.z += 0.1
    return obj


def select(*objects) -> None:
    bpy.context.view_layer.update()  # objects linked since are in the view layer only after an update
    for o in bpy.context.view_layer.objects:
        o.select_set(o in objects)
    bpy.context.view_layer.objects.active = objects[0] if objects else None


def keys_of(obj, name: str) -> list[tuple[int, float]]:
    from bl_ext.user_default.mlaface.importer import fcurves

    curve = fcurves(obj.data.shape_keys).find(f'key_blocks["{name}"].value')
    return [(round(k.co[0]), round(k.co[1], 4)) for k in curve.keyframe_points] if curve else []


@pytest.fixture
def scene(addon):
    for blocks in (bpy.data.objects, bpy.data.meshes, bpy.data.armatures, bpy.data.actions):
        for block in list(blocks):
            blocks.remove(block)
    s = bpy.context.scene
    s.render.fps, s.render.fps_base, s.frame_current = 30, 1.0, 1
    for name in s.mlaface_drive.bl_rna.properties.keys():
        s.mlaface_drive.property_unset(name)
    arkit = rig("arkit", list(ARKIT_SHAPES) + ["fat"])  # ARKit's own names, 52 shapes (browInnerUp whole)
    snake = rig("snake", ["Blendshape.eye_blink_l", "Blendshape.jaw_open", "Blendshape.brow_inner_up_l",
                          "Blendshape.brow_inner_up_r", "Blendshape.mouth_smile_l"])  # prefixed, split
    caps = rig("caps", ["head:EyeBlink_Left", "head:JawOpen", "head:Jaw"])  # a namespace, capitals
    return s, arkit, snake, caps


def test_a_track_drives_three_naming_styles(scene, tmp_path):
    s, arkit, snake, caps = scene
    # the user's own animation on the 52-shape rig: kept, and still playing beneath ours
    arkit.data.shape_keys.key_blocks["fat"].value = 0.7
    arkit.data.shape_keys.keyframe_insert('key_blocks["fat"].value', frame=3)
    user = arkit.data.shape_keys.animation_data.action
    settings = s.mlaface_drive
    settings.source, settings.filepath = "TRACK", str(write_track(tmp_path / "take_anim.npz", clip_track()))
    select(arkit, snake, caps)
    assert bpy.ops.mlaface.apply_to_selected() == {"FINISHED"}
    jaw = [(f, round(float(v), 4)) for f, v in zip(range(1, N + 1), np.linspace(0, 0.9, N), strict=True)]
    for obj, name in ((arkit, "jawOpen"), (snake, "Blendshape.jaw_open"), (caps, "head:JawOpen")):
        assert keys_of(obj, name) == jaw, obj.name
    assert keys_of(caps, "head:EyeBlink_Left")[5] == (6, 1.0) and keys_of(caps, "head:EyeBlink_Left")[4][1] == 0
    assert {v for _, v in keys_of(arkit, "browInnerUp")} == {0.4}  # folded: the mean of the split halves
    assert {v for _, v in keys_of(snake, "Blendshape.brow_inner_up_r")} == {0.6}  # split rig: each half its own
    assert keys_of(arkit, "tongueOut") == [] and keys_of(caps, "head:Jaw") == []
    # what stays unmatched is reported on both sides, not guessed
    assert "fat" in arkit.mlaface_unmatched_targets and "tongueOut" in arkit.mlaface_unmatched_targets
    assert caps.mlaface_unmatched_targets == "head:Jaw"
    assert "tongueOut_never" in caps.mlaface_unmatched_sources and "jawOpen" not in caps.mlaface_unmatched_sources
    # a new action per target; the user's is untouched and on an NLA track beneath
    anim = arkit.data.shape_keys.animation_data
    assert anim.action != user and anim.action.name.startswith("arkit mlaface")
    assert [s.action for t in anim.nla_tracks for s in t.strips] == [user]
    user_curves = user.layers[0].strips[0].channelbags[0].fcurves
    assert [(round(k.co[0]), round(k.co[1], 4)) for k in user_curves[0].keyframe_points] == [(3, 0.7)]
    s.frame_set(6)
    assert arkit.data.shape_keys.key_blocks["fat"].value == pytest.approx(0.7)  # the user's curve still plays
    assert arkit.data.shape_keys.key_blocks["eyeBlinkLeft"].value == pytest.approx(1.0)


def test_corrected_links_scale_and_strength(scene, tmp_path):
    s, _, _, caps = scene
    settings = s.mlaface_drive
    settings.source, settings.filepath = "TRACK", str(write_track(tmp_path / "take_anim.npz", clip_track()))
    select(caps)
    assert bpy.ops.mlaface.match_shape_keys() == {"FINISHED"}
    links = {item.target: item for item in caps.mlaface_links}
    assert links["head:JawOpen"].source == "jawOpen" and links["head:Jaw"].source == "NONE"
    links["head:Jaw"].source, links["head:Jaw"].scale, links["head:Jaw"].offset = "jawOpen", 0.5, 0.1  # the user's
    settings.strength, settings.start_frame = 0.5, 10
    assert bpy.ops.mlaface.apply_to_selected() == {"FINISHED"}
    got = keys_of(caps, "head:Jaw")
    assert got[0] == (10, 0.1) and got[-1] == (10 + N - 1, round(0.1 + 0.5 * 0.5 * 0.9, 4))
    assert keys_of(caps, "head:JawOpen")[-1] == (10 + N - 1, 0.45)
    # applied again: a new action replaces ours, which is not stacked onto the NLA
    assert bpy.ops.mlaface.apply_to_selected() == {"FINISHED"}
    assert not caps.data.shape_keys.animation_data.nla_tracks


def test_a_live_link_csv_at_its_own_rate(scene, tmp_path):
    s, arkit, snake, _ = scene
    csv = write_live_link_csv(clip_track(70, fps=60.0), tmp_path / "phone.csv")  # onto the 30 fps scene
    select(snake)
    assert bpy.ops.mlaface.import_live_link(filepath=str(csv)) == {"FINISHED"}
    keys = keys_of(snake, "Blendshape.jaw_open")
    assert [f for f, _ in keys] == list(range(1, 36))  # 70 samples over 69/60 s: every other one, 35 scene frames
    np.testing.assert_allclose([v for _, v in keys], np.linspace(0, 0.9, 70)[::2], atol=1e-4)
    assert {v for _, v in keys_of(snake, "Blendshape.brow_inner_up_l")} == {0.4}  # CSV's one browInnerUp, spread
    assert s.mlaface_drive.source == "CSV"


def test_a_head_expression_and_the_head_bone(scene):
    s, arkit, snake, _ = scene
    for name, value in (("jawOpen", 0.3), ("eyeBlinkLeft", 0.8)):
        arkit.data.shape_keys.key_blocks[name].value = value
    arkit.rotation_euler = (0, 0, math.radians(20))  # the source head turned 20 degrees towards +x ...
    armature = bpy.data.objects.new("body", bpy.data.armatures.new("body"))
    s.collection.objects.link(armature)
    select(armature)
    bpy.ops.object.mode_set(mode="EDIT")
    bone = armature.data.edit_bones.new("head")
    bone.head, bone.tail, bone.roll = (0, 0, 1.5), (0, 0, 1.8), 0.3
    bpy.ops.object.mode_set(mode="OBJECT")
    settings = s.mlaface_drive
    settings.source, settings.head = "HEAD", arkit
    settings.head_object, settings.head_bone = armature, "head"
    s.frame_current = 7
    select(arkit, snake)  # the source head among the selection is left out
    assert bpy.ops.mlaface.apply_to_selected() == {"FINISHED"}
    assert keys_of(snake, "Blendshape.jaw_open") == [(7, 0.3)] and keys_of(snake, "Blendshape.eye_blink_l") == \
        [(7, 0.8)]
    assert arkit.data.shape_keys.animation_data is None
    s.frame_set(7)
    # ... so the head bone's tip turns 20 degrees about the world's z (of the source as the camera saw it:
    # the mlaface head's matrix is its pose in front of the camera)
    pose = armature.pose.bones["head"]
    y = (armature.matrix_world @ pose.matrix).to_3x3().col[1]  # the bone's axis, vertical at rest
    assert abs(y.z - 1) < 1e-4  # a turn about the vertical leaves it vertical
    x = (armature.matrix_world @ pose.matrix).to_3x3().col[0]
    rest_x = (armature.matrix_world @ pose.bone.matrix_local).to_3x3().col[0]
    assert math.degrees(rest_x.angle(x)) == pytest.approx(20, abs=0.1)


@pytest.mark.parametrize("content, message", [
    ("", "empty file"),
    ("Timecode,BlendShapeCount,EyeBlinkLeft\n00:00:00:00.000,1,0.5\n", "line 1: .*missing columns"),
    (None, "line 3, column JawOpen: 'open' is not a number"),
])
def test_a_malformed_source_changes_nothing(scene, tmp_path, content, message):
    s, arkit, snake, _ = scene
    bad = tmp_path / "bad.csv"
    if content is None:
        lines = write_live_link_csv(clip_track(), tmp_path / "good.csv").read_text().splitlines()
        fields = lines[2].split(",")
        fields[2 + ARKIT_SHAPES.index("jawOpen")] = "open"
        lines[2] = ",".join(fields)
        content = "\n".join(lines)
    bad.write_text(content)
    select(arkit, snake)
    before = (len(bpy.data.actions), arkit.data.shape_keys.animation_data, snake.data.shape_keys.animation_data)
    with pytest.raises(RuntimeError, match=f"bad.csv: {message}"):
        bpy.ops.mlaface.import_live_link(filepath=str(bad))
    assert (len(bpy.data.actions), arkit.data.shape_keys.animation_data, snake.data.shape_keys.animation_data) == \
        before
    s.mlaface_drive.filepath = str(tmp_path / "missing_anim.npz")
    s.mlaface_drive.source = "TRACK"
    with pytest.raises(RuntimeError, match="missing_anim.npz"):
        bpy.ops.mlaface.apply_to_selected()
    select()
    with pytest.raises(RuntimeError, match="select the meshes to drive"):
        bpy.ops.mlaface.apply_to_selected()
    assert len(bpy.data.actions) == before[0]


def test_an_animated_head_is_applied_over_its_frames(scene):
    """A head animated in the scene (Animate from Video's, or any rig's) drives the target frame by frame."""
    s, arkit, snake, _ = scene
    keys = arkit.data.shape_keys
    for frame, value in ((1, 0.0), (5, 0.8)):
        keys.key_blocks["jawOpen"].value = value
        keys.keyframe_insert('key_blocks["jawOpen"].value', frame=frame)
    from bl_ext.user_default.mlaface.importer import fcurves

    for point in fcurves(keys)[0].keyframe_points:
        point.interpolation = "LINEAR"
    settings = s.mlaface_drive
    settings.source, settings.head = "HEAD", arkit
    select(snake)
    assert bpy.ops.mlaface.apply_to_selected() == {"FINISHED"}
    assert keys_of(snake, "Blendshape.jaw_open") == [(1, 0.0), (2, 0.2), (3, 0.4), (4, 0.6), (5, 0.8)]
