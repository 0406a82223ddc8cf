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

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import MlafaceError
from .npz_file import read_record, write_record

FORMAT = "mlaface.animation"
FORMAT_VERSION = 1

# Live Link Face's CSV columns after Timecode and BlendShapeCount: ARKit's 52 blendshapes in ARKit's order, then
# head and eye rotations in radians.
LIVE_LINK_SHAPES = (
    "EyeBlinkLeft", "EyeLookDownLeft", "EyeLookInLeft", "EyeLookOutLeft", "EyeLookUpLeft", "EyeSquintLeft",
    "EyeWideLeft", "EyeBlinkRight", "EyeLookDownRight", "EyeLookInRight", "EyeLookOutRight", "EyeLookUpRight",
    "EyeSquintRight", "EyeWideRight", "JawForward", "JawRight", "JawLeft", "JawOpen", "MouthClose", "MouthFunnel",
    "MouthPucker", "MouthRight", "MouthLeft", "MouthSmileLeft", "MouthSmileRight", "MouthFrownLeft",
    "MouthFrownRight", "MouthDimpleLeft", "MouthDimpleRight", "MouthStretchLeft", "MouthStretchRight",
    "MouthRollLower", "MouthRollUpper", "MouthShrugLower", "MouthShrugUpper", "MouthPressLeft", "MouthPressRight",
    "MouthLowerDownLeft", "MouthLowerDownRight", "MouthUpperUpLeft", "MouthUpperUpRight", "BrowDownLeft",
    "BrowDownRight", "BrowInnerUp", "BrowOuterUpLeft", "BrowOuterUpRight", "CheekPuff", "CheekSquintLeft",
    "CheekSquintRight", "NoseSneerLeft", "NoseSneerRight", "TongueOut",
)
LIVE_LINK_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                       "RightEyeYaw", "RightEyePitch", "RightEyeRoll")


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


def head_angles(rotation: np.ndarray) -> np.ndarray:
    """[N, 3, 3] model -> camera rotations -> [N, 3] (yaw, pitch, roll) radians of the head as the camera sees
    it, R = Rz(roll) @ Ry(yaw) @ Rx(pitch): yaw > 0 turns the face towards image right, pitch > 0 nods it down,
    roll > 0 tilts it counter-clockwise in the image."""
    r = np.asarray(rotation, dtype=np.float64)
    yaw = np.arcsin(np.clip(-r[:, 2, 0], -1, 1))
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.stack([yaw, pitch, roll], 1)


def _timecode(seconds: float, fps: float) -> str:
    """Live Link Face's HH:MM:SS:FF.mmm (frames at the clip's rate, then the fraction of a frame)."""
    frames_total = seconds * fps
    whole = math.floor(frames_total + 1e-9)
    frac = frames_total - whole
    fps_int = max(1, round(fps))
    s, ff = divmod(whole, fps_int)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{sec:02d}:{ff:02d}.{round(frac * 1000):03d}"


def live_link_name(arkit: str) -> str:
    """Our ARKit name (eyeBlinkLeft, browInnerUpLeft) -> Live Link Face's column (EyeBlinkLeft, BrowInnerUp)."""
    name = arkit[0].upper() + arkit[1:]
    for split in ("BrowInnerUp", "CheekPuff"):  # ICT-FaceKit splits these two; ARKit has one each
        if name.startswith(split):
            return split
    return name


def write_live_link_csv(track: AnimationTrack, path: str | Path) -> Path:
    """The Live Link Face CSV layout: Timecode, BlendShapeCount, ARKit's 52 shapes, then head and eye rotations
    (radians). Shapes ICT-FaceKit splits into left and right (browInnerUp, cheekPuff) are averaged; tongueOut,
    which it lacks, and the eye rotations are 0."""
    track.check(str(path))
    names = [str(n) for n in track.expression_names]
    columns = np.zeros((track.n_frames, len(LIVE_LINK_SHAPES)), np.float64)
    counts = np.zeros(len(LIVE_LINK_SHAPES))
    for e, name in enumerate(names):
        target = live_link_name(name)
        if target in LIVE_LINK_SHAPES:
            k = LIVE_LINK_SHAPES.index(target)
            columns[:, k] += track.weights[:, e]
            counts[k] += 1
    columns /= np.maximum(counts, 1)
    angles = head_angles(track.rotation)
    lines = [",".join(("Timecode", "BlendShapeCount") + LIVE_LINK_SHAPES + LIVE_LINK_ROTATIONS)]
    for i in range(track.n_frames):
        values = [f"{v:.6f}" for v in columns[i]] + [f"{v:.6f}" for v in angles[i]] + ["0"] * 6
        lines.append(",".join([_timecode(float(track.times[i]), track.fps), str(len(LIVE_LINK_SHAPES)), *values]))
    return write_bytes_atomic(Path(path), ("\n".join(lines) + "\n").encode())
