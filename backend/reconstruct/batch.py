"""Reconstruct a list of photos into an output folder, one event at a time: shared by `mlaface reconstruct` and the
worker. A photo that fails is reported with its reason and the others go on; every file is written atomically.

Events (dicts): {"event": "progress", "done", "total", "photo", "stage"}, {"event": "result", "photo",
"face_index", "files": {format: path}, "landmark_nme", "fit_quality"}, {"event": "error", "photo", "message"}.
Outputs are named after the photo: einstein.npz, einstein.obj (+ .mtl, _texture.png), einstein.glb,
einstein_overlay.png; with several faces in a photo, einstein_face0.npz, einstein_face1.npz, ...
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..io.errors import MlafaceError
from ..io.face_result import FaceResult, write_result
from ..io.gltf import write_glb
from ..io.images import load_image
from ..io.obj import write_obj
from ..render.overlay import write_overlay
from .pipeline import Reconstructor

WORST_LISTED = 5
BATCH = 8  # photos whose faces are fitted together


class Cancelled(Exception):
    """Raised inside a reconstruction when the caller asked to stop."""


def prepare_output(folder: str | Path) -> Path:
    """Create the output folder and check that files can be written there."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MlafaceError(f"{folder}: cannot create the output folder ({e.strerror})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MlafaceError(f"{folder}: output folder is not writable")
    return folder


def write_outputs(result: FaceResult, folder: Path, stem: str, formats: list[str]) -> dict[str, str]:
    """Write the chosen formats of one result, each on its own thread (compression and file writing release the
    GIL, so two cores write two files at once); {format: path}. A failure removes what this call wrote."""
    def write(fmt: str) -> list[Path]:
        if fmt == "npz":
            return [write_result(folder / f"{stem}.npz", result)]
        if fmt == "obj":
            return write_obj(result, folder / f"{stem}.obj")
        if fmt == "glb":
            return [write_glb(result, folder / f"{stem}.glb")]
        return [write_overlay(result, load_image(result.photo), folder / f"{stem}_overlay.png")]

    if {"obj", "glb"} & set(formats):
        result.texture_png  # noqa: B018 (encoded once, before the threads that share it)
    with ThreadPoolExecutor(max(1, len(formats)), thread_name_prefix="mlaface-format") as pool:
        futures = {fmt: pool.submit(write, fmt) for fmt in formats}
    written = [p for f in futures.values() if f.exception() is None for p in f.result()]
    failed = next((f.exception() for f in futures.values() if f.exception() is not None), None)
    if failed is not None:
        for p in written:
            p.unlink(missing_ok=True)
        if isinstance(failed, OSError):
            raise MlafaceError(f"{folder}: could not write the outputs of {stem} ({failed.strerror or failed})") \
                from None
        raise failed
    return {fmt: str(f.result()[0]) for fmt, f in futures.items()}


def reconstruct_batch(rec: Reconstructor, photos: list[Path], folder: Path, formats: list[str],
                      same_person: bool = False, should_stop: Callable[[], bool] = lambda: False,
                      batch: int = BATCH) -> Iterator[dict]:
    """Events of reconstructing `photos` into `folder` (see the module docstring). The faces of up to `batch`
    photos go through the network and the fit together (one fit step costs about the same for 1 face or 8);
    texture and files follow face by face, each face's files written in the background while the next face is
    made, and the next batch's faces found in the background meanwhile. Stops between faces, or inside a fit,
    once should_stop() is true (raising Cancelled out of the current batch, after the files already being written
    are finished and reported; a face's files are written whole or not at all)."""
    total = len(photos)

    def progress(photo: Path, stage: str, done: int) -> dict:
        return {"event": "progress", "done": done, "total": total, "photo": str(photo), "stage": stage}

    def stop_check(_step: int, _steps: int) -> None:
        if should_stop():
            raise Cancelled()

    if same_person:
        yield progress(photos[0], "fitting one identity to all photos", 0)
        try:
            results = rec.reconstruct_same_person(photos, stop_check)
        except MlafaceError as e:
            yield {"event": "error", "photo": ", ".join(map(str, photos)), "message": str(e)}
            return
        for done, (photo, result) in enumerate(zip(photos, results, strict=True), start=1):
            yield _written(result, folder, photo.stem, formats, photo)
            yield progress(photo, "written", done)
        return
    writer, detector = _Writer(should_stop), _Detector(rec)
    chunks = [photos[first:first + batch] for first in range(0, total, batch)]
    try:
        upcoming = detector.start(chunks[0]) if chunks else []
        for k, chunk in enumerate(chunks):
            # the next batch's faces are found while this one is fitted, textured and written
            detecting, upcoming = upcoming, detector.start(chunks[k + 1]) if k + 1 < len(chunks) else []
            found = []  # (photo, image, faces, detect seconds)
            for done, (photo, faces_of) in enumerate(zip(chunk, detecting, strict=True), start=k * batch):
                if should_stop():
                    raise Cancelled()
                yield from writer.finished()
                yield progress(photo, "reconstructing", done)
                try:
                    found.append((photo, *faces_of.result()))
                except MlafaceError as e:
                    yield {"event": "error", "photo": str(photo), "message": str(e)}
            yield from _fitted(rec, found, folder, formats, should_stop, stop_check, writer)
        yield from writer.finished(wait=True)
    except Cancelled:
        yield from writer.finished(wait=True)  # files already being written are finished and reported
        raise
    finally:
        detector.close()
        writer.close()
    yield progress(photos[-1], "finished", total) if photos else progress(Path(), "finished", 0)


class _Detector:
    """Finds the faces of photos on one background thread, in order (dlib's detector releases the GIL, so it runs
    beside the fit and texture of the batch before; one thread, so the provider is never used from two at once)."""

    def __init__(self, rec: Reconstructor):
        self.rec = rec
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mlaface-detect")

    def start(self, photos: list[Path]) -> list[Future]:
        """Futures of (image, faces, seconds) for the photos; MlafaceError for a photo without a face."""
        return [self.pool.submit(self._detect, photo) for photo in photos]

    def _detect(self, photo: Path) -> tuple:
        start = time.perf_counter()
        image, faces = self.rec.detect(photo)
        return image, faces, time.perf_counter() - start

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class _Writer:
    """Writes one face's files at a time on a background thread while the next face is detected and textured
    (zlib, PNG encoding and dlib's detector release the GIL); the result events come back in order."""

    def __init__(self, should_stop: Callable[[], bool]):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="mlaface-writer")
        self.pending: deque[Future] = deque()
        self.should_stop = should_stop

    def write(self, result: FaceResult, folder: Path, stem: str, formats: list[str], photo: Path) -> Iterator[dict]:
        """Start writing result's files once the face before it is written (its event is yielded), unless the
        caller has asked to stop by then (Cancelled)."""
        yield from self.finished(wait=True)
        if self.should_stop():
            raise Cancelled()
        self.pending.append(self.pool.submit(_written, result, folder, stem, formats, photo))

    def finished(self, wait: bool = False) -> Iterator[dict]:
        """The events of the writes that are done (with wait, of all)."""
        while self.pending and (wait or self.pending[0].done()):
            yield self.pending.popleft().result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


def _fitted(rec: Reconstructor, found: list, folder: Path, formats: list[str], should_stop, stop_check,
            writer: _Writer) -> Iterator[dict]:
    """Events of fitting the detected faces of some photos together ((photo, image, faces, detect seconds) each),
    then texturing and writing them face by face. A fit that fails is retried photo by photo, so the error names
    its photo."""
    rows = [(photo, image, face, i, detect_s, len(faces) > 1)
            for photo, image, faces, detect_s in found for i, face in enumerate(faces)]
    if not rows:
        return
    seconds: dict = {}
    try:
        fitted, blends = rec.fit_faces([r[1] for r in rows], [r[2] for r in rows], False, progress=stop_check,
                                       seconds=seconds)
    except MlafaceError as e:
        if len(found) > 1:
            for item in found:
                yield from _fitted(rec, [item], folder, formats, should_stop, stop_check, writer)
        else:
            yield {"event": "error", "photo": str(found[0][0]), "message": str(e)}
        return
    for b, (photo, image, face, index, detect_s, several) in enumerate(rows):
        if should_stop():
            raise Cancelled()
        try:
            result = rec.face_result(fitted, blends[b], b, image, face, str(photo), index, False,
                                     {"detect": detect_s, **seconds})
        except MlafaceError as e:
            yield {"event": "error", "photo": str(photo), "message": str(e)}
            continue
        yield from writer.write(result, folder, f"{photo.stem}_face{index}" if several else photo.stem, formats,
                                photo)


def _written(result: FaceResult, folder: Path, stem: str, formats: list[str], photo: Path) -> dict:
    try:
        files = write_outputs(result, folder, stem, formats)
    except MlafaceError as e:
        return {"event": "error", "photo": str(photo), "message": str(e)}
    return {"event": "result", "photo": str(photo), "face_index": result.face_index, "files": files,
            "landmark_nme": result.meta["landmark_nme_end"], "fit_quality": result.meta["fit_quality"]}


def worst_fits(results: list[dict], count: int = WORST_LISTED) -> list[str]:
    """Result events -> lines naming the `count` least trustworthy fits (lowest fit_quality score first), for a
    batch's summary: where to look first among hundreds of photos."""
    ranked = sorted(results, key=lambda e: e["fit_quality"]["score"])[:count]
    lines = []
    for e in ranked:
        q = e["fit_quality"]
        gap = "no network" if q["detector_network_gap"] is None else \
            f"detector and network {100 * q['detector_network_gap']:.1f}% apart"
        lines.append(f"{Path(e['photo']).name} face {e['face_index']}: score {q['score']:.2f} ({gap}, "
                     f"residual {100 * q['residual']:.1f}%)")
    return lines
