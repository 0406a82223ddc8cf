"""Live Link Face's CSV layout, written from an AnimationTrack: what Unreal's Live Link Face workflows and the
tools that drive ARKit rigs read. Standard library and numpy only.

Columns: Timecode (HH:MM:SS:FF.mmm at the clip's rate), BlendShapeCount, ARKit's 52 blendshapes in ARKit's
order, then head and eye rotations in radians.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .animation import AnimationTrack, head_angles
from .atomic import write_bytes_atomic

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
