"""Live Link Face's CSV layout, written from and read into an AnimationTrack: what Unreal's Live Link Face
workflows and the tools that drive ARKit rigs exchange. Standard library and numpy only.

Columns: Timecode (HH:MM:SS:FF.mmm: frames at the timecode's rate, then the fraction of a frame in thousandths),
BlendShapeCount, ARKit's 52 blendshapes in ARKit's order, then head and eye rotations in radians. The head's
(yaw, pitch, roll) are backend.io.animation.head_angles' (yaw > 0 turns the face towards the image's right).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..rig.names import ARKIT_SHAPES
from ..rig.retarget import match_links, target_values
from .animation import AnimationTrack, angles_rotation, head_angles
from .atomic import write_bytes_atomic
from .errors import MlafaceError

# Live Link Face's spelling of ARKit's shapes: the first letter capitalised (EyeBlinkLeft).
LIVE_LINK_SHAPES = tuple(name[0].upper() + name[1:] for name in ARKIT_SHAPES)
LIVE_LINK_ROTATIONS = ("HeadYaw", "HeadPitch", "HeadRoll", "LeftEyeYaw", "LeftEyePitch", "LeftEyeRoll",
                       "RightEyeYaw", "RightEyePitch", "RightEyeRoll")
HEAD_COLUMNS = LIVE_LINK_ROTATIONS[:3]
# Frame rates a timecode may run at.
TIMECODE_RATES = (24, 25, 30, 48, 50, 60, 120)
DEFAULT_RATE = 60  # Live Link Face's recording rate, taken for a recording within one second
_TIMECODE = re.compile(r"^(\d+):(\d{2}):(\d{2})[:;](\d+)(?:\.(\d+))?$")


def _timecode(seconds: float, fps: float) -> str:
    """Live Link Face's HH:MM:SS:FF.mmm (frames at the clip's rate, then the fraction of a frame)."""
    frames_total = seconds * fps
    whole = math.floor(frames_total + 1e-9)
    frac = frames_total - whole
    fps_int = max(1, round(fps))
    s, ff = divmod(whole, fps_int)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{sec:02d}:{ff:02d}.{min(999, round(frac * 1000)):03d}"


def _timecode_rate(stamps: list[tuple], path: Path) -> int:
    """Where the timecodes pass a second, the smallest of TIMECODE_RATES above every frame number; a recording
    shorter than that does not say its rate: DEFAULT_RATE."""
    if len({s[:3] for s in stamps}) < 2:
        return DEFAULT_RATE
    top = max(int(s[3]) for s in stamps)
    rate = next((r for r in TIMECODE_RATES if r > top), None)
    if rate is None:
        raise MlafaceError(f"{path}: timecode frame {top} is beyond {TIMECODE_RATES[-1]} frames/s")
    return rate


def write_live_link_csv(track: AnimationTrack, path: str | Path) -> Path:
    """The Live Link Face CSV layout: Timecode, BlendShapeCount, ARKit's 52 shapes, then head and eye rotations
    (radians). Shapes the track splits into left and right (browInnerUp, cheekPuff) are averaged
    (backend/rig/retarget.py); a shape the track lacks (ICT-FaceKit has no tongueOut) and the eye rotations are 0."""
    track.check(str(path))
    links = match_links(ARKIT_SHAPES)
    values = target_values(track.expression_names, track.weights, links)
    columns = np.stack([values.get(name, np.zeros(track.n_frames, np.float32)) for name in ARKIT_SHAPES], 1)
    angles = head_angles(track.rotation)
    lines = [",".join(("Timecode", "BlendShapeCount") + LIVE_LINK_SHAPES + LIVE_LINK_ROTATIONS)]
    for i in range(track.n_frames):
        row = [f"{v:.6f}" for v in columns[i]] + [f"{v:.6f}" for v in angles[i]] + ["0"] * 6
        lines.append(",".join([_timecode(float(track.times[i]), track.fps), str(len(LIVE_LINK_SHAPES)), *row]))
    return write_bytes_atomic(Path(path), ("\n".join(lines) + "\n").encode())


def read_live_link_csv(path: str | Path, fps: float | None = None) -> AnimationTrack:
    """A Live Link Face CSV -> an AnimationTrack: ARKit's 52 shapes (ARKit's spelling) per row, the head's rotation
    from HeadYaw / HeadPitch / HeadRoll (identity where those columns are absent), no translation. Times come from
    the timecodes at fps, or at the rate _timecode_rate reads from them, from 0 at the first row. MlafaceError
    naming the file and the line for an empty file, missing columns, a row of the wrong length, a bad timecode,
    text or a non-finite value in a number, or timecodes that do not increase."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MlafaceError(f"{path}: Live Link CSV not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MlafaceError(f"{path}: not a readable Live Link CSV ({e})") from None
    rows = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not rows:
        raise MlafaceError(f"{path}: empty file, not a Live Link CSV")
    header = [h.strip() for h in rows[0][1].split(",")]
    index = {name: i for i, name in enumerate(header)}
    missing = [name for name in ("Timecode", *LIVE_LINK_SHAPES) if name not in index]
    if missing:
        shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
        raise MlafaceError(f"{path}: line {rows[0][0]}: not a Live Link Face CSV header: missing columns {shown}")
    head = [name for name in HEAD_COLUMNS if name in index]
    if head and len(head) < 3:
        raise MlafaceError(f"{path}: line {rows[0][0]}: head rotation needs all of {', '.join(HEAD_COLUMNS)}")
    if len(rows) < 2:
        raise MlafaceError(f"{path}: no rows after the header")
    wanted = [index[name] for name in LIVE_LINK_SHAPES + tuple(head)]
    stamps, numbers = [], np.zeros((len(rows) - 1, len(wanted)))
    for r, (n, line) in enumerate(rows[1:]):
        fields = line.split(",")
        if len(fields) != len(header):
            raise MlafaceError(f"{path}: line {n}: {len(fields)} values, the header has {len(header)}")
        match = _TIMECODE.match(fields[index["Timecode"]].strip())
        if match is None:
            raise MlafaceError(f"{path}: line {n}: timecode {fields[index['Timecode']]!r} is not HH:MM:SS:FF.mmm")
        stamps.append(match.groups())
        for k, i in enumerate(wanted):
            try:
                numbers[r, k] = float(fields[i])
            except ValueError:
                raise MlafaceError(f"{path}: line {n}, column {header[i]}: {fields[i].strip()!r} is not a number") \
                    from None
            if not math.isfinite(numbers[r, k]):
                raise MlafaceError(f"{path}: line {n}, column {header[i]}: {fields[i].strip()} is not finite")
    if fps is None:
        fps = _timecode_rate(stamps, path)
    seconds = np.array([int(h) * 3600 + int(m) * 60 + int(s) + (int(f) + int((frac or "0").ljust(3, "0")[:3]) / 1000)
                        / fps for h, m, s, f, frac in stamps])
    back = np.flatnonzero(np.diff(seconds) <= 0)
    if len(back):
        raise MlafaceError(f"{path}: line {rows[back[0] + 2][0]}: timecode does not come after the line before's")
    n = len(seconds)
    angles = numbers[:, 52:55] if head else np.zeros((n, 3))
    track = AnimationTrack(fps=float(fps), times=seconds - seconds[0], frame_index=np.arange(n, dtype=np.int32),
                           expression_names=np.array(ARKIT_SHAPES), weights=numbers[:, :52].astype(np.float32),
                           rotation=angles_rotation(angles).astype(np.float32),
                           translation=np.zeros((n, 3), np.float32), tracked=np.ones(n, bool), source=str(path))
    track.check(str(path))
    return track
