"""AnimationTrack: a clip's per-frame ARKit expression weights and head pose, in one versioned `.npz` beside the
FaceResult of the clip's neutral head (one identity for the whole clip). numpy only: the Blender add-on reads it.

Arrays (N frames, E expressions):
    format: str, FORMAT; format_version: int, FORMAT_VERSION
    fps: float32, the clip's frame rate; times: [N] float64 seconds from the clip's start (variable frame rate kept)
    frame_index: [N] int32, the frame's number in the clip
    expression_names: [E] str, as the FaceResult's; weights: [N, E] float32 in [0, 1]
    rotation: [N, 3, 3] float32 and translation: [N, 3] float32 metres: the head in camera space per frame
        (camera_point = rotation @ model_point + translation, as FaceResult)
    tracked: [N] bool: False where the face was lost and the frame is bridged (interpolated)
    source: str, the clip's path
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MlafaceError
from .npz_file import read_record, write_record

FORMAT = "mlaface.animation"
FORMAT_VERSION = 1

@dataclass
class AnimationTrack:
    fps: float
    times: np.ndarray
    frame_index: np.ndarray
    expression_names: np.ndarray
    weights: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    tracked: np.ndarray
    source: str

    @property
    def n_frames(self) -> int:
        return len(self.times)

    def check(self, where: str = "animation") -> None:
        N, E = len(self.times), len(self.expression_names)
        problems = []
        if N == 0:
            problems.append("no frames")
        if not self.fps > 0:
            problems.append(f"frame rate must be positive, got {self.fps}")
        if self.weights.shape != (N, E):
            problems.append("weights do not match frames x expressions")
        if self.rotation.shape != (N, 3, 3) or self.translation.shape != (N, 3):
            problems.append("pose arrays do not match the frames")
        if self.frame_index.shape != (N,) or self.tracked.shape != (N,):
            problems.append("frame numbers or tracking flags do not match the frames")
        if N > 1 and not np.all(np.diff(self.times) > 0):
            problems.append("times must increase")
        if problems:
            raise MlafaceError(f"{where}: invalid animation: " + "; ".join(problems))


_SCALARS = {"fps": float, "source": str}


def write_track(path: str | Path, track: AnimationTrack) -> Path:
    """Write atomically; never a half-written file."""
    return write_record(path, FORMAT, FORMAT_VERSION, track)


def read_track(path: str | Path) -> AnimationTrack:
    return read_record(path, FORMAT, FORMAT_VERSION, "animation", AnimationTrack, _SCALARS)


def pose_track(names, weights, rotation, source: str) -> AnimationTrack:
    """One expression (weights [E] of names [E]) and head rotation [3, 3] as a one-frame track: a photo's
    expression applied like a clip's."""
    return AnimationTrack(fps=1.0, times=np.zeros(1), frame_index=np.zeros(1, np.int32),
                          expression_names=np.asarray(names, dtype=str),
                          weights=np.asarray(weights, np.float32)[None],
                          rotation=np.asarray(rotation, np.float32)[None],
                          translation=np.zeros((1, 3), np.float32), tracked=np.ones(1, bool), source=source)


def head_angles(rotation: np.ndarray) -> np.ndarray:
    """[N, 3, 3] model -> camera rotations -> [N, 3] (yaw, pitch, roll) radians of the head as the camera sees
    it, R = Rz(roll) @ Ry(yaw) @ Rx(pitch): yaw > 0 turns the face towards image right, pitch > 0 nods it down,
    roll > 0 tilts it counter-clockwise in the image."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = np.arcsin(np.clip(-r[:, 2, 0], -1, 1))
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.stack([yaw, pitch, roll], 1)


def angles_rotation(angles: np.ndarray) -> np.ndarray:
    """[N, 3] (yaw, pitch, roll) radians -> [N, 3, 3] model -> camera rotations; head_angles' inverse."""
    a = np.asarray(angles, dtype=np.float64)
    cy, sy, cx, sx, cz, sz = np.cos(a[:, 0]), np.sin(a[:, 0]), np.cos(a[:, 1]), np.sin(a[:, 1]), \
        np.cos(a[:, 2]), np.sin(a[:, 2])
    one, zero = np.ones_like(cy), np.zeros_like(cy)
    rx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx
