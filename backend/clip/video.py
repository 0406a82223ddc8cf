"""Clips: a video file (decoded with PyAV, FFmpeg's codecs) or a folder of numbered frames, read frame by frame.

    info, frames = open_clip("take.mp4", start=0, end=None, step=1)
    for frame in frames:            # Frame(index, time, image [H, W, 3] uint8 RGB)
        ...

Frame numbers count decoded frames from 0; `start` (inclusive), `end` (exclusive) and `step` select among them.
Times are the frames' presentation times in seconds from the first frame, so a variable-frame-rate clip keeps its
real timing; `ClipInfo.fps` is the stream's average rate (a folder of frames has the rate it is given).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io.errors import MlafaceError
from ..io.images import load_image

FRAME_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
DEFAULT_FOLDER_FPS = 30.0


@dataclass(frozen=True)
class Frame:
    index: int
    time: float
    image: np.ndarray


@dataclass(frozen=True)
class ClipInfo:
    """path; fps: average frames per second; frames: the number of frames the stream declares (0 if unknown);
    size: (H, W)."""

    path: Path
    fps: float
    frames: int
    size: tuple[int, int]


def numbered_frames(folder: Path) -> list[Path]:
    """Image files of a folder in the order of the last number in their names (frame_9 before frame_10)."""
    def number(p: Path) -> int:
        found = re.findall(r"\d+", p.stem)
        return int(found[-1]) if found else -1

    files = [p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES]
    if not files:
        raise MlafaceError(f"{folder}: no image frames (png, jpg, ...) in the folder")
    if any(number(p) < 0 for p in files):
        raise MlafaceError(f"{folder}: frame files must be numbered (e.g. frame_0001.png)")
    return sorted(files, key=number)


def _select(index: int, start: int, end: int | None, step: int) -> bool:
    return index >= start and (end is None or index < end) and (index - start) % step == 0


def open_clip(path: str | Path, start: int = 0, end: int | None = None, step: int = 1,
              fps: float | None = None) -> tuple[ClipInfo, Iterator[Frame]]:
    """The clip's info and an iterator over its selected frames. fps: the rate of a folder of frames (default
    30), or a rate that overrides a video's. Problems (missing, unreadable, no video stream, no frames) raise
    MlafaceError; decoding errors mid-stream raise it naming the frame."""
    path = Path(path)
    if step < 1 or start < 0 or (end is not None and end <= start):
        raise MlafaceError(f"bad frame range: start {start}, end {end}, step {step}")
    if fps is not None and not fps > 0:
        raise MlafaceError(f"--fps must be positive, got {fps}")
    if path.is_dir():
        files = numbered_frames(path)
        rate = fps or DEFAULT_FOLDER_FPS
        first = load_image(files[0])
        info = ClipInfo(path, rate, len(files), first.shape[:2])

        def folder_frames() -> Iterator[Frame]:
            for i, f in enumerate(files):
                if _select(i, start, end, step):
                    yield Frame(i, i / rate, load_image(f))

        return info, folder_frames()
    if not path.is_file():
        raise MlafaceError(f"{path}: clip not found")
    try:
        import av
    except ImportError:
        raise MlafaceError("reading video needs PyAV: pip install 'mlaface[video]'") from None
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise MlafaceError(f"{path}: not a readable video ({e})") from None
    if not container.streams.video:
        container.close()
        raise MlafaceError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    rate = fps or (float(stream.average_rate) if stream.average_rate else 0.0) or DEFAULT_FOLDER_FPS
    info = ClipInfo(path, rate, int(stream.frames or 0), (stream.codec_context.height, stream.codec_context.width))

    def video_frames() -> Iterator[Frame]:
        t0, i = None, -1
        try:
            for frame in container.decode(stream):
                i += 1
                if end is not None and i >= end:
                    break
                t = float(frame.time) if frame.time is not None else i / rate
                t0 = t if t0 is None else t0
                if _select(i, start, end, step):
                    time = (t - t0) if fps is None else i / rate
                    yield Frame(i, time, frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as e:
            raise MlafaceError(f"{path}: cannot decode frame {i + 1} ({e})") from None
        finally:
            container.close()
        if i < 0:
            raise MlafaceError(f"{path}: the video has no frames")

    return info, video_frames()


def write_video(frames: np.ndarray, path: str | Path, fps: float) -> Path:
    """frames [n, H, W, 3] uint8 -> an H.264 .mp4 (yuv420p)."""
    from fractions import Fraction

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "18"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return Path(path)
