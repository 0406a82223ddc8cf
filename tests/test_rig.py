"""Driving ARKit rigs without Blender: shape-key names matched across rigs' spellings, fold and spread of the split
shapes, the values a link gives, head rotations in Blender's and a bone's axes, and the Live Link Face CSV read
back from our writer and refused when malformed."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_animation import track

from backend.io.animation import angles_rotation, head_angles, pose_track
from backend.io.errors import MlafaceError
from backend.io.live_link import read_live_link_csv, write_live_link_csv
from backend.rig.names import ARKIT_SHAPES, arkit_name, name_key
from backend.rig.retarget import ShapeLink, blender_rotations, bone_rotations, match_links, target_values, unmatched

ICT = ["browInnerUpLeft", "browInnerUpRight", "cheekPuffLeft", "cheekPuffRight", "eyeBlinkLeft", "eyeBlinkRight",
       "jawOpen", "mouthLeft", "mouthSmileLeft"]


@pytest.mark.parametrize("spelling", ["eyeBlinkLeft", "EyeBlinkLeft", "eyeBlink_L", "eyeBlink.L", "eye_blink_left",
                                      "EYE_BLINK_L", "L_eyeBlink", "eyeBlinkL", "Blendshape.eyeBlinkLeft",
                                      "head_geo:EyeBlink_Left", "CC_Base|eye_blink_L", "blendShape1.eyeBlink_L"])
def test_every_spelling_of_a_blink_is_the_blink(spelling):
    assert arkit_name(spelling) == "eyeBlinkLeft"


def test_names_keep_their_meaning():
    assert name_key("eyeBlinkRight") == ("eyeblink", "Right") and name_key("jawOpen") == ("jawopen", "")
    assert arkit_name("mouth_L") == "mouthLeft" and arkit_name("MouthRollLower") == "mouthRollLower"
    assert arkit_name("browInnerUp_R") == "browInnerUpRight" and arkit_name("CheekPuff") == "cheekPuff"
    assert arkit_name("mouthRoll") is None and arkit_name("Basis") is None and arkit_name("smile") is None
    assert arkit_name("eyeBlink") is None  # no side where ARKit has two: not guessed
    assert {arkit_name(n) for n in ARKIT_SHAPES} == set(ARKIT_SHAPES)  # no two ARKit names collide


def test_fold_spread_and_unmatched():
    # a 52-shape rig folds the split source; a split rig spreads a whole source
    rig = ["Blendshape.browInnerUp", "Blendshape.cheekPuff", "Blendshape.eyeBlinkLeft", "fat", "tongueOut"]
    links = match_links(rig)
    assert [link.source for link in links] == ["browInnerUp", "cheekPuff", "eyeBlinkLeft", "", "tongueOut"]
    weights = np.array([[0.2, 0.6, 0.0, 1.0, 0.5, 0.0, 0.3, 0.0, 0.0]])
    values = target_values(ICT, weights, links)
    assert values["Blendshape.browInnerUp"][0] == pytest.approx(0.4) and values["Blendshape.cheekPuff"][0] == 0.5
    targets, sources = unmatched(links, ICT)
    assert targets == ["fat", "tongueOut"] and set(values) == set(rig[:3])  # ICT-FaceKit has no tongueOut
    assert sources == ["eyeBlinkRight", "jawOpen", "mouthLeft", "mouthSmileLeft"]
    split = match_links(["browInnerUp_L", "browInnerUp_R"])
    assert [link.source for link in split] == ["browInnerUpLeft", "browInnerUpRight"]
    arkit = np.zeros((1, 52))
    arkit[0, ARKIT_SHAPES.index("browInnerUp")] = 0.7
    assert all(v[0] == pytest.approx(0.7) for v in target_values(ARKIT_SHAPES, arkit, split).values())


def test_scale_offset_strength_and_limits():
    links = [ShapeLink("jaw", "jawOpen", scale=2.0, offset=0.1), ShapeLink("blink", "eyeBlinkLeft")]
    w = np.zeros((3, len(ICT)))
    w[:, ICT.index("jawOpen")] = [0.0, 0.2, 0.8]
    w[:, ICT.index("eyeBlinkLeft")] = [0.0, 0.5, 1.0]
    values = target_values(ICT, w, links, strength=0.5, limits={"blink": (0.0, 0.4)})
    np.testing.assert_allclose(values["jaw"], [0.1, 0.3, 0.9], atol=1e-6)
    np.testing.assert_allclose(values["blink"], [0.0, 0.25, 0.4], atol=1e-6)
    assert target_values(ICT, w, [ShapeLink("blink", "tongueOut")]) == {}


def test_head_rotation_in_blender_and_bone_axes():
    # yaw > 0 turns the face to the image's right: a character facing -y turns its nose towards +x
    yaw = blender_rotations(angles_rotation(np.array([[0.4, 0.0, 0.0]])))[0]
    nose = yaw @ [0.0, -1.0, 0.0]
    assert nose[0] > 0.3 and abs(nose[2]) < 1e-9
    down = blender_rotations(angles_rotation(np.array([[0.0, 0.3, 0.0]])))[0] @ [0.0, -1.0, 0.0]
    assert down[2] < -0.2  # pitch > 0 nods down
    # a bone turned by its local rotation turns the bone's world frame by the world rotation
    world = Rotation.random(6, random_state=2).as_matrix()
    armature, rest = Rotation.random(2, random_state=3).as_matrix()
    local = bone_rotations(world, armature, rest)
    np.testing.assert_allclose(armature @ rest @ local, world @ armature @ rest, atol=1e-9)


def test_pose_track_is_one_frame():
    one = pose_track(ICT, np.linspace(0, 1, len(ICT)), np.eye(3), "photo.jpg")
    one.check()
    assert one.n_frames == 1 and one.weights.shape == (1, len(ICT))


def test_live_link_round_trip_keeps_every_curve(tmp_path):
    original = track(40)  # 40 frames at 30 fps: the timecodes pass a second, so the rate is read from them
    back = read_live_link_csv(write_live_link_csv(original, tmp_path / "take.csv"))
    assert back.fps == 30 and back.n_frames == 40 and list(back.expression_names) == list(ARKIT_SHAPES)
    np.testing.assert_allclose(back.times, original.times, atol=1e-3 / 30)
    links = match_links(ARKIT_SHAPES)
    want = target_values(original.expression_names, original.weights, links)  # the split shapes folded
    got = target_values(back.expression_names, back.weights, links)
    assert set(want) == {"eyeBlinkLeft", "browInnerUp", "jawOpen"} and set(got) == set(ARKIT_SHAPES)
    for name in ARKIT_SHAPES:  # the shapes the track lacks read back as 0
        np.testing.assert_allclose(got[name], want.get(name, 0), atol=1e-6, err_msg=name)
    np.testing.assert_allclose(head_angles(back.rotation), head_angles(original.rotation), atol=1e-5)
    short = read_live_link_csv(write_live_link_csv(track(5), tmp_path / "short.csv"), fps=30)
    np.testing.assert_allclose(short.times, np.arange(5) / 30, atol=1e-6)


def test_a_real_layout_with_its_own_rate(tmp_path):
    header = "Timecode,BlendShapeCount," + ",".join(n[0].upper() + n[1:] for n in ARKIT_SHAPES)
    rows = [f"19:56:06:{f:02d}.{m:03d},52," + ",".join(["0.25"] * 52) for f, m in ((58, 0), (59, 500), (0, 0))]
    (tmp_path / "phone.csv").write_text("\ufeff" + header + "\n" + "\n".join(rows).replace(
        "19:56:06:00.000", "19:56:07:00.000") + "\n")
    got = read_live_link_csv(tmp_path / "phone.csv")
    assert got.fps == 60
    np.testing.assert_allclose(got.times, [0, 1.5 / 60, 2 / 60], atol=1e-9)
    np.testing.assert_allclose(got.rotation, np.tile(np.eye(3), (3, 1, 1)))  # no head columns: facing front


@pytest.mark.parametrize("make, message", [
    (lambda good: "", "empty file"),
    (lambda good: good.replace("JawOpen,", ""), r"line 1: .*missing columns JawOpen"),
    (lambda good: good.replace(",HeadPitch", ",Pitch"), "line 1: head rotation needs all of"),
    (lambda good: _row(good, 3, lambda f: f[:-1]), "line 3: 62 values, the header has 63"),
    (lambda good: _row(good, 2, lambda f: [f[0], f[1], "abc", *f[3:]]), "line 2, column EyeBlinkLeft: 'abc' is not"),
    (lambda good: _row(good, 2, lambda f: [f[0], f[1], "nan", *f[3:]]), "line 2, column EyeBlinkLeft: nan is not"),
    (lambda good: _row(good, 4, lambda f: ["1:00", *f[1:]]), "line 4: timecode '1:00' is not"),
    (lambda good: _row(good, 4, lambda f: ["00:00:00:00.000", *f[1:]]), "line 4: timecode does not come after"),
])
def test_malformed_csvs_are_refused_with_the_line(tmp_path, make, message):
    good = write_live_link_csv(track(5), tmp_path / "good.csv").read_text()
    bad = tmp_path / "bad.csv"
    bad.write_text(make(good))
    with pytest.raises(MlafaceError, match=f"bad.csv: {message}"):
        read_live_link_csv(bad)


def _row(text: str, line: int, change) -> str:
    lines = text.splitlines()
    lines[line - 1] = ",".join(change(lines[line - 1].split(",")))
    return "\n".join(lines) + "\n"
