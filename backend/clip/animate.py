"""Clip to animated head: one identity for the whole clip, ARKit expression weights and head pose per frame.

    head, track, report = animate(reconstructor, "take.mp4", AnimateOptions(smooth=0.5))

1. Track one face through the frames (backend/clip/tracking.py): 68 landmarks per frame, lost frames noted.
2. Identity: the face model fitted to KEYFRAMES frames spread over the clip at once (one identity, an expression
   and pose each; backend/reconstruct/fitting.py with shared_identity); the keyframe with the most frontal head,
   textured, gives the neutral head's FaceResult.
3. Per frame, in batches: expression (53 weights in [0, 1], with a sparsity prior: the fewest shapes that explain
   the points) and pose fitted to the landmarks with that identity fixed.
4. Blinks and the jaw from the pixels (backend/clip/pixel_reading.py): the lid landmarks rarely close on a blink and
   the inner-lip ones close early on an open mouth, so eyeBlinkLeft / eyeBlinkRight / jawOpen are read from
   renders of the head around each eye and the mouth compared with the frame (blinks measured from each eye's
   resting level over the clip).
5. Lost frames are bridged: weights and pose interpolated between the tracked frames around them (held at the
   clip's ends) and reported by frame number.
6. Temporal smoothing (`smooth` 0 = off .. 1 = strong): a One Euro filter (Casiez et al. 2012), whose cut-off rises
   with the signal's speed, so slow jitter is removed while a blink or a jaw drop keeps its speed; run forwards then
   backwards, so it adds no lag.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..detect.align import landmark_box
from ..detect.landmarks import Face
from ..io.animation import AnimationTrack, write_track
from ..io.errors import MlafaceError, OptionError
from ..io.face_result import FaceResult, write_result
from ..io.gltf import write_glb
from ..io.live_link import write_live_link_csv
from ..reconstruct.batch import prepare_output
from ..reconstruct.fitting import FitConfig, fit, start_params
from ..render.camera import fov_from_focal
from .pixel_reading import EYES, FEATURES, PixelReader, from_rest
from .tracking import TrackedFrame, lost_ranges, track
from .video import open_clip

KEYFRAMES = 8
# Sparsity of per-frame expressions. On the test clip (training/clip_eval.py, no smoothing): 0 -> the shapes
# that should stay off average 0.083; 0.01 -> 0.019; 0.03 -> 0.003, and jawOpen's error drops 0.100 -> 0.079.
EXPRESSION_L1 = 0.03
# One camera for the whole clip, its focal length held near the field-of-view prior (keyframes) and then the
# keyframes' (frames) by a prior 100 times a photo's: landmarks barely tell focal length from distance, and a free
# focal trades against the head's turn (test clip: yaw error 1.5 degrees held, 2.9 free; jawOpen's 0.023 and 0.031).
CLIP_FOCAL = 1.0
CARRY_SECONDS = 0.15  # a detector miss shorter than this keeps the landmarks of the last box; longer is "lost"
# Frames whose pixels are read at once: a read is many small tensor operations that leave the second core idle
# (test clip, 2 cores: 4.1 s of pixel reading -> 3.2 s; each read the same as alone).
READ_THREADS = 2


@dataclass(frozen=True)
class AnimateOptions:
    fps: float | None = None  # the frame rate of a folder of frames, or one that overrides a video's
    smooth: float = 0.5
    start: int = 0
    end: int | None = None
    step: int = 1
    fit_steps: int = 20  # per frame batch
    batch: int = 32

    def __post_init__(self):
        if self.fps is not None and not 0 < self.fps <= 1000:
            raise OptionError("fps", f"must be above 0 and at most 1000, got {self.fps}")
        if not 0 <= self.smooth <= 1:
            raise OptionError("smooth", f"must be between 0 and 1, got {self.smooth}")
        if self.start < 0:
            raise OptionError("start", f"must be 0 or more, got {self.start}")
        if self.end is not None and self.end <= self.start:
            raise OptionError("end", f"must be after start ({self.start}), got {self.end}")
        for name in ("step", "fit_steps", "batch"):
            if getattr(self, name) < 1:
                raise OptionError(name, f"must be 1 or more, got {getattr(self, name)}")


def one_euro(x: np.ndarray, t: np.ndarray, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> np.ndarray:
    """One Euro filter of x [N, C] sampled at times t [N] seconds, forwards only."""
    out = np.empty_like(x, dtype=np.float64)
    out[0] = x[0]
    dx_hat = np.zeros(x.shape[1])

    def alpha(cutoff, dt):
        tau = 1 / (2 * math.pi * cutoff)
        return 1 / (1 + tau / dt)

    for i in range(1, len(x)):
        dt = max(float(t[i] - t[i - 1]), 1e-6)
        dx = (x[i] - out[i - 1]) / dt
        dx_hat = dx_hat + alpha(d_cutoff, dt) * (dx - dx_hat)
        cutoff = min_cutoff + beta * np.abs(dx_hat)
        out[i] = out[i - 1] + alpha(cutoff, dt) * (x[i] - out[i - 1])
    return out


def smooth_signal(x: np.ndarray, t: np.ndarray, strength: float) -> np.ndarray:
    """Zero-lag One Euro smoothing of x [N, C] at times t: forwards, then backwards over the result.
    strength 0 returns x; 1 smooths slow motion below about 0.6 Hz."""
    if strength <= 0 or len(x) < 3:
        return x
    strength = min(strength, 1.0)
    min_cutoff = 10 ** (1.0 - 1.2 * strength)  # 10 Hz at 0, 0.63 Hz at 1
    beta = 2.0
    forward = one_euro(x, t, min_cutoff, beta)
    back = one_euro(forward[::-1], t[-1] - t[::-1], min_cutoff, beta)[::-1]
    return back.astype(x.dtype)


def orthonormal(r: np.ndarray) -> np.ndarray:
    """[N, 3, 3] nearly-rotations -> the nearest rotations (SVD)."""
    u, _, vt = np.linalg.svd(r)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return u @ vt


def bridge(times: np.ndarray, known: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values [N, C] known where `known` [N] -> linear interpolation in time over the rest (held at the ends)."""
    out = values.copy()
    k = np.flatnonzero(known)
    for c in range(values.shape[1]):
        out[:, c] = np.interp(times, times[k], values[k, c])
    return out


def _faces(frames: list[TrackedFrame], provider: str) -> list[Face]:
    return [Face(landmark_box(f.landmarks), f.landmarks, 1.0, provider) for f in frames]


def _keyframe_images(clip, options: AnimateOptions, wanted: set[int]) -> dict[int, np.ndarray]:
    """A second pass over the clip, up to the last of the few frames whose pixels are needed (identity and
    texture)."""
    _, frames = open_clip(clip, options.start, options.end, options.step, options.fps)
    out = {}
    for f in frames:
        if f.index in wanted:
            out[f.index] = f.image
        if len(out) == len(wanted):
            break
    return out


def _identity(rec, clip: Path, options: AnimateOptions, good: list[TrackedFrame]
              ) -> tuple[FaceResult, TrackedFrame, np.ndarray, list[int]]:
    """Step 2: one identity from KEYFRAMES frames spread over the clip -> (the neutral head, textured from the most
    frontal keyframe, that keyframe, its image, the keyframe numbers)."""
    picks = sorted({good[round(i)].index for i in np.linspace(0, len(good) - 1, min(KEYFRAMES, len(good)))})
    images = _keyframe_images(clip, options, set(picks))
    keys = [f for f in good if f.index in picks]
    key_images, key_faces = [images[f.index] for f in keys], _faces(keys, rec.provider.name)
    fitted, blends = rec.fit_faces(key_images, key_faces, True,
                                   rec.options.fit_config(w_expression_l1=EXPRESSION_L1, w_focal=CLIP_FOCAL))
    b = int(torch.argmin(fitted.params.rotation[:, :2, 2].norm(dim=1)))  # the nose (+z) nearest the view axis
    head = rec.face_result(fitted, blends[b], b, key_images[b], key_faces[b], str(clip), 0, True, {})
    return head, keys[b], key_images[b], picks


def _fit_frames(rec, head: FaceResult, good: list[TrackedFrame], size: tuple[int, int], options: AnimateOptions,
                progress) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 3: expression and pose of every tracked frame with the head's identity fixed
    -> weights [N, E], rotation [N, 3, 3], translation [N, 3]."""
    identity = torch.from_numpy(head.identity).to(rec.device)
    weights = np.zeros((len(good), len(head.expression_names)), np.float32)
    rotation = np.zeros((len(good), 3, 3), np.float32)
    translation = np.zeros((len(good), 3), np.float32)
    blank = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (*size, 3))
    cfg = FitConfig(steps=options.fit_steps, rigid_steps=min(3, options.fit_steps // 2), light=False,
                    w_expression_l1=EXPRESSION_L1, fov_deg=fov_from_focal(size, head.focal), w_focal=CLIP_FOCAL)
    for i in range(0, len(good), options.batch):
        points = [f.landmarks for f in good[i:i + options.batch]]
        B = len(points)
        init = start_params(rec.model, points, [size] * B, cfg, identity=identity[None].expand(B, -1))
        p = fit(rec.model, [blank] * B, points, cfg, init, fixed_identity=True).params
        weights[i:i + B] = p.expression.cpu().numpy()
        rotation[i:i + B] = p.rotation.cpu().numpy()
        translation[i:i + B] = p.translation.cpu().numpy()
        if progress:
            progress("fit", i + B, len(good))
    return weights, rotation, translation


def _read_pixels(rec, clip: Path, options: AnimateOptions, head: FaceResult, key_image: np.ndarray,
                 good: list[TrackedFrame], weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray,
                 progress) -> None:
    """Step 4: eyeBlinkLeft, eyeBlinkRight and jawOpen read from the frames' pixels, written into weights where
    the pixels tell (blinks measured from each eye's resting level)."""
    reader = PixelReader(head, key_image, rec.data.landmarks_detector68, rec.device)
    row = {f.index: i for i, f in enumerate(good)}
    shapes = [f.shape for f in FEATURES.values()]
    read = np.full((len(good), len(shapes)), np.nan)
    _, frames = open_clip(clip, options.start, options.end, options.step, options.fps)

    def done(i: int, future: Future) -> None:
        values = future.result()
        read[i] = [np.nan if values[s] is None else values[s] for s in shapes]
        if progress:
            progress("pixels", i + 1, len(good))

    pending: deque[tuple[int, Future]] = deque()  # frames being read, in order; at most READ_THREADS + 1 held
    with ThreadPoolExecutor(READ_THREADS, thread_name_prefix="mlaface-pixels") as pool:
        for frame in frames:
            i = row.get(frame.index)
            if i is None:
                continue
            pending.append((i, pool.submit(reader.read, frame.image, good[i].landmarks, weights[i], rotation[i],
                                           translation[i])))
            if len(pending) > READ_THREADS:
                done(*pending.popleft())
        while pending:
            done(*pending.popleft())
    for k, (feature, f) in enumerate(FEATURES.items()):
        value = from_rest(read[:, k]) if feature in EYES else read[:, k]
        e = list(head.expression_names).index(f.shape)
        weights[:, e] = np.where(np.isfinite(value), value, weights[:, e])


def animate(rec, clip: str | Path, options: AnimateOptions = AnimateOptions(),
            progress: Callable[[str, int, int], None] | None = None) -> tuple[FaceResult, AnimationTrack, dict]:
    """rec: a backend.reconstruct.pipeline.Reconstructor. progress(stage, done, total) with stage "track", "fit",
    "pixels". -> (the neutral head's FaceResult, the track, a report: frames, lost ranges, seconds per stage)."""
    clip = Path(clip)
    t0 = time.perf_counter()
    info, frames = open_clip(clip, options.start, options.end, options.step, options.fps)
    counter = {"n": 0}

    def tracked(item: TrackedFrame) -> None:
        counter["n"] += 1
        if progress:
            progress("track", counter["n"], max(info.frames // options.step, counter["n"]))

    frames_out = track(frames, rec.provider, max_carry=max(1, round(CARRY_SECONDS * info.fps / options.step)),
                       progress=tracked, keep_images=False)
    good = [f for f in frames_out if f.landmarks is not None]
    t1 = time.perf_counter()
    head, head_frame, key_image, picks = _identity(rec, clip, options, good)
    t2 = time.perf_counter()
    weights, rotation, translation = _fit_frames(rec, head, good, info.size, options, progress)
    t3 = time.perf_counter()
    _read_pixels(rec, clip, options, head, key_image, good, weights, rotation, translation, progress)
    t4 = time.perf_counter()

    E = len(head.expression_names)
    times = np.array([f.time for f in frames_out])
    known = np.array([f.landmarks is not None for f in frames_out])
    full = np.zeros((len(frames_out), E + 12), np.float64)
    full[known] = np.concatenate([weights, rotation.reshape(-1, 9), translation], 1)
    full = smooth_signal(bridge(times, known, full), times, options.smooth)
    anim = AnimationTrack(
        fps=float(info.fps / options.step),
        times=times, frame_index=np.array([f.index for f in frames_out], np.int32),
        expression_names=head.expression_names, weights=np.clip(full[:, :E], 0, 1).astype(np.float32),
        rotation=orthonormal(full[:, E:E + 9].reshape(-1, 3, 3)).astype(np.float32),
        translation=full[:, E + 9:].astype(np.float32), tracked=known, source=str(clip.resolve()))
    report = {"frames": len(frames_out), "tracked": int(known.sum()), "lost": lost_ranges(frames_out),
              "carried": int(sum(f.state == "carried" for f in frames_out)), "keyframes": picks,
              "head_frame": head_frame.index, "fps": anim.fps,
              "seconds": {"track": t1 - t0, "identity": t2 - t1, "fit": t3 - t2, "pixels": t4 - t3}}
    return head, anim, report


def write_clip_outputs(head: FaceResult, anim: AnimationTrack, folder: Path, stem: str) -> list[Path]:
    """OUT/STEM.npz (the neutral head), STEM_anim.npz (the track), STEM.glb (the head with the animation and the
    camera), STEM_livelink.csv. Each file is written atomically; if one fails, the others are removed."""
    jobs = [(folder / f"{stem}.npz", lambda p: write_result(p, head)),
            (folder / f"{stem}_anim.npz", lambda p: write_track(p, anim)),
            (folder / f"{stem}.glb", lambda p: write_glb(head, p, anim)),
            (folder / f"{stem}_livelink.csv", lambda p: write_live_link_csv(anim, p))]
    done: list[Path] = []
    try:
        for path, write in jobs:
            write(path)
            done.append(path)
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise
    return done


def animate_to_folder(rec, clip: str | Path, output: str | Path, options: AnimateOptions = AnimateOptions(),
                      progress: Callable[[str, int, int], None] | None = None
                      ) -> tuple[list[Path], AnimationTrack, dict]:
    """`animate`, then write_clip_outputs into `output` named after the clip (CLI and worker). A missing clip is
    reported before the output folder is made. -> (written files, the track, the report)."""
    clip = Path(clip)
    if not clip.exists():
        raise MlafaceError(f"{clip}: clip not found")
    folder = prepare_output(output)
    head, anim, report = animate(rec, clip, options, progress)
    files = write_clip_outputs(head, anim, folder, clip.stem if clip.is_file() else clip.name)
    return files, anim, report
