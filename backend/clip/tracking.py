"""Follow one face through a clip's frames without jumping to another face.

Frame 1 with a face picks the largest one. After that, every frame's detections are matched to the face's last
box (IoU): the best match above MATCH_IOU continues the track ("detected"). When no detection matches (a turned
head the detector misses, motion blur), the landmarks are taken inside the last box ("carried"), for at most
`max_carry` frames in a row; past that, the face counts as lost until a detection matches again, which may be any
face overlapping the last good box by REFIND_IOU (it has moved while lost). Lost frames get no landmarks; the
caller bridges them (interpolates) and reports them by frame number.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ..detect.align import landmark_box
from ..detect.landmarks import iou
from ..io.errors import MlafaceError
from .video import Frame

MATCH_IOU = 0.3
REFIND_IOU = 0.05


@dataclass
class TrackedFrame:
    """index: frame number; time: seconds; image: [H, W, 3] uint8 (None when not kept);
    landmarks: [68, 2] photo pixels or None when lost; state: "detected", "carried" or "lost"."""

    index: int
    time: float
    image: np.ndarray | None
    landmarks: np.ndarray | None
    state: str


def _follow(lm: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    """The box for the next frame when carrying: the last box, re-centred on the landmarks."""
    x0, y0, x1, y1 = landmark_box(lm)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = box[2] - box[0], box[3] - box[1]
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def track(frames: Iterable[Frame], provider, max_carry: int = 15,
          progress: Callable[[TrackedFrame], None] | None = None, keep_images: bool = True) -> list[TrackedFrame]:
    """Landmarks of one face through the frames. provider: a landmark provider (backend.landmarks) with
    boxes(image) and detect(image, boxes); keep_images False drops the pixels (long clips). Raises MlafaceError
    when no frame shows a face."""
    out: list[TrackedFrame] = []
    box = None  # the box the track follows (detector style)
    last_good = None
    carried = 0
    for frame in frames:
        boxes = [b for b, _ in provider.boxes(frame.image)]
        state, lm = "lost", None
        if box is None and last_good is None:
            if boxes:
                box = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
                state = "detected"
        elif box is not None:
            best = max(boxes, key=lambda b: iou(b, box), default=None)
            if best is not None and iou(best, box) >= MATCH_IOU:
                box, state, carried = best, "detected", 0
            elif carried < max_carry:
                state, carried = "carried", carried + 1
            else:
                box = None
        else:  # lost: look for the face near where it was
            best = max(boxes, key=lambda b: iou(b, last_good), default=None)
            if best is not None and iou(best, last_good) >= REFIND_IOU:
                box, state, carried = best, "detected", 0
        if state != "lost":
            lm = provider.detect(frame.image, [box])[0].landmarks
            if state == "detected":
                last_good = box
            else:
                box = _follow(lm, box)
        item = TrackedFrame(frame.index, frame.time, frame.image if keep_images else None, lm, state)
        out.append(item)
        if progress:
            progress(item)
    if not out:
        raise MlafaceError("the clip has no frames in the chosen range")
    if all(f.state == "lost" for f in out):
        raise MlafaceError(f"no face found in any of the {len(out)} frames")
    return out


def lost_ranges(frames: list[TrackedFrame]) -> list[tuple[int, int]]:
    """[(first, last)] frame numbers of each run of lost frames."""
    runs, start = [], None
    for prev, f in zip([None, *frames[:-1]], frames, strict=True):
        if f.state == "lost" and start is None:
            start = f.index
        if f.state != "lost" and start is not None:
            runs.append((start, prev.index))
            start = None
    if start is not None:
        runs.append((start, frames[-1].index))
    return runs
