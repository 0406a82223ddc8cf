"""The animation track file and its Live Link Face CSV export (numpy only, as the add-on reads it)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from backend.io.animation import AnimationTrack, head_angles, read_track, write_track
from backend.io.errors import MlafaceError
from backend.io.gltf import rotation_to_quaternion
from backend.io.live_link import LIVE_LINK_ROTATIONS, LIVE_LINK_SHAPES, write_live_link_csv

NAMES = np.array(["eyeBlinkLeft", "browInnerUpLeft", "browInnerUpRight", "jawOpen"])


def euler(yaw, pitch, roll):
    """R = Rz(roll) @ Ry(yaw) @ Rx(pitch), as backend.model.pose.euler_to_matrix."""
    return Rotation.from_euler("ZYX", np.stack([roll, yaw, pitch], 1)).as_matrix()


def track(n=5) -> AnimationTrack:
    t = np.arange(n) / 30.0
    weights = np.zeros((n, len(NAMES)), np.float32)
    weights[:, 0] = np.linspace(0, 1, n)
    weights[:, 1], weights[:, 2] = 0.2, 0.6
    yaw = np.linspace(-0.5, 0.5, n)
    return AnimationTrack(fps=30.0, times=t, frame_index=np.arange(n, dtype=np.int32), expression_names=NAMES,
                          weights=weights, rotation=euler(yaw, 0.1 * yaw, -0.2 * yaw).astype(np.float32),
                          translation=np.tile([0.0, 0.0, -1.0], (n, 1)).astype(np.float32),
                          tracked=np.ones(n, bool), source="clip.mp4")


def test_round_trip_and_bad_tracks(tmp_path):
    path = write_track(tmp_path / "a.npz", track())
    back = read_track(path)
    assert back.fps == 30.0 and back.source == "clip.mp4"
    np.testing.assert_array_equal(back.weights, track().weights)
    bad = track()
    bad.times = bad.times[::-1].copy()
    with pytest.raises(MlafaceError, match="times must increase"):
        write_track(tmp_path / "b.npz", bad)
    assert not (tmp_path / "b.npz").exists()
    bad = track()
    bad.weights = bad.weights[:, :2]
    with pytest.raises(MlafaceError, match="weights do not match"):
        write_track(tmp_path / "c.npz", bad)
    with pytest.raises(MlafaceError, match="not found"):
        read_track(tmp_path / "none.npz")


def test_head_angles_invert_the_pose():
    g = np.random.default_rng(0)
    yaw, pitch, roll = g.uniform(-1.2, 1.2, 20), g.uniform(-0.6, 0.6, 20), g.uniform(-0.6, 0.6, 20)
    np.testing.assert_allclose(head_angles(euler(yaw, pitch, roll)), np.stack([yaw, pitch, roll], 1), atol=1e-9)
    # yaw > 0 turns the nose (+z) towards the camera's +x (image right)
    nose = euler(np.array([0.3]), np.zeros(1), np.zeros(1))[0] @ [0, 0, 1]
    assert nose[0] > 0


def test_quaternions_match_the_matrices():
    r = Rotation.random(50, random_state=1)
    q = rotation_to_quaternion(r.as_matrix())
    np.testing.assert_allclose(Rotation.from_quat(q).as_matrix(), r.as_matrix(), atol=1e-9)


def test_live_link_csv(tmp_path):
    path = write_live_link_csv(track(), tmp_path / "take.csv")
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    assert header[:2] == ["Timecode", "BlendShapeCount"] and len(header) == 2 + 52 + 9
    assert header[2:54] == list(LIVE_LINK_SHAPES) and header[54:] == list(LIVE_LINK_ROTATIONS)
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 5 and rows[0][1] == "52"
    assert rows[0][0] == "00:00:00:00.000" and rows[4][0] == "00:00:00:04.000"
    col = {name: i for i, name in enumerate(header)}
    assert float(rows[4][col["EyeBlinkLeft"]]) == pytest.approx(1.0)
    assert float(rows[2][col["BrowInnerUp"]]) == pytest.approx(0.4)  # left and right averaged
    assert float(rows[4][col["HeadYaw"]]) == pytest.approx(0.5, abs=1e-5)
    assert float(rows[0][col["TongueOut"]]) == 0
    assert "MouthSmileLeft" in header and "BrowInnerUpLeft" not in header
