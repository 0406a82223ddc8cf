"""Follow one face through a clip's frames without jumping to another face.

Frame 1 with a face picks the largest one. After that, each frame is searched only around the face's last box
(REGION box sides), as for the largest face of a photo (HOG's upsampled pass only when the first finds no sure
face; a 720p frame costs what the region costs), and the detections are matched to the last box (IoU): the best
match above MATCH_IOU continues the track ("detected"). When no detection matches (a turned head the detector
misses, motion blur), the landmarks are taken inside the last box ("carried"), for at most `max_carry` frames in a
row; past that, the face counts as lost until a detection matches again, which may be any face overlapping the
last good box by REFIND_IOU (it has moved while lost), searched for in the whole frame. Lost frames get no
landmarks; the caller bridges them (interpolates) and reports them by frame number.
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
REGION = 2.5


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


def boxes_near(provider, image: np.ndarray, box: tuple[float, float, float, float]) -> list[tuple]:
    """The detector's boxes (photo pixels) in the square of REGION box sides around box (cut from the frame as it
    is; the detector downscales it as it would a photo), as looked for when only the largest face is wanted."""
    side = REGION * max(box[2] - box[0], box[3] - box[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    H, W = image.shape[:2]
    x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    x1, y1 = min(W, int(cx + side / 2) + 1), min(H, int(cy + side / 2) + 1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return []
    return [(b[0] + x0, b[1] + y0, b[2] + x0, b[3] + y0)
            for b, _ in provider.boxes(image[y0:y1, x0:x1], largest=True)]


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
        if box is None:
            boxes = [b for b, _ in provider.boxes(frame.image)]
        else:
            boxes = boxes_near(provider, frame.image, box)
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
