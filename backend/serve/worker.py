"""`mlaface worker`: a long-lived process for the Blender add-on, speaking backend/io/worker_protocol.py (JSON lines on
stdin/stdout). The face model, landmark provider and network load once, at start; requests queue and run one at
a time on a thread, so cancel requests are read while a reconstruction runs.

A request's options are checked by name and kind here and by range where they are defined
(ReconstructOptions, AnimateOptions), so the worker refuses what the command line refuses, in the same words.
"""

from __future__ import annotations

import queue
import threading
from typing import TextIO

from .. import __version__
from ..clip.animate import AnimateOptions, animate_to_folder
from ..io.errors import MlafaceError
from ..io.images import find_photos
from ..io.worker_protocol import PROTOCOL_VERSION, ProtocolError, decode_request, encode
from ..reconstruct.batch import Cancelled, prepare_output, reconstruct_batch
from ..reconstruct.options import parse_formats
from ..reconstruct.pipeline import ReconstructOptions, Reconstructor

RUN_OPTIONS = {"fit_steps": int, "texture_size": int, "all_faces": bool, "same_person": bool, "formats": list}
CLIP_OPTIONS = {"smooth": float, "start": int, "end": int, "step": int, "fps": float}


def request_options(req: dict, kinds: dict[str, type]) -> dict:
    """The request's "options", each of the kind `kinds` names (an int is a float too; null leaves the default);
    MlafaceError naming the option otherwise."""
    opts = req.get("options", {})
    unknown = sorted(set(opts) - set(kinds))
    if unknown:
        raise MlafaceError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(kinds)}")
    out = {}
    for name, value in opts.items():
        kind = kinds[name]
        if value is None:
            continue
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise MlafaceError(f"option {name}: expected {'a list' if kind is list else kind.__name__}, got "
                               f"{value!r}")
        out[name] = value
    return out


class Session:
    """What the request handlers share: the loaded Reconstructor (None when loading failed), the status, the
    output channel and the ids of cancelled requests."""

    def __init__(self, out: TextIO, options: ReconstructOptions):
        self.out, self.lock = out, threading.Lock()
        self.cancelled: set[str] = set()
        try:
            self.rec, self.load_error = Reconstructor(options), None
        except MlafaceError as e:
            self.rec, self.load_error = None, str(e)
        rec = self.rec
        self.status = {"protocol": PROTOCOL_VERSION, "mlaface": __version__, "ok": rec is not None,
                       "error": self.load_error, "device": str(rec.device) if rec else options.device,
                       "landmarks": rec.provider.name if rec else None,
                       "weights": str(rec.weights) if rec and rec.weights else None}

    def send(self, message: dict) -> None:
        with self.lock:
            self.out.write(encode(message))
            self.out.flush()

    def stop_check(self, rid: str) -> bool:
        return rid in self.cancelled


def handle_reconstruct(session: Session, rid: str, req: dict, tally: dict[str, int]) -> None:
    """Photos into the output folder, an event per step; tally counts the faces written ("ok") and the photos
    that failed."""
    opts = request_options(req, RUN_OPTIONS)
    formats = parse_formats(opts.pop("formats", ["npz"]))
    same_person = opts.pop("same_person", False)
    run_rec = session.rec.with_options(**opts)
    photos = find_photos(req["photos"])
    folder = prepare_output(req["output"])
    for event in reconstruct_batch(run_rec, photos, folder, formats, same_person,
                                   should_stop=lambda: session.stop_check(rid)):
        tally["ok"] += event["event"] == "result"
        tally["failed"] += event["event"] == "error"
        session.send({"id": rid, **event})


def handle_animate(session: Session, rid: str, req: dict, tally: dict[str, int]) -> None:
    """A clip into the output folder: progress per frame, one result."""
    options = AnimateOptions(**request_options(req, CLIP_OPTIONS))

    def progress(stage: str, done: int, total: int) -> None:
        if session.stop_check(rid):
            raise Cancelled
        session.send({"id": rid, "event": "progress", "done": done, "total": total, "photo": req["clip"],
                      "stage": stage})

    files, _, report = animate_to_folder(session.rec, req["clip"], req["output"], options, progress)
    session.send({"id": rid, "event": "result", "clip": req["clip"], "frames": report["frames"],
                  "lost": report["lost"], "files": dict(zip(("npz", "anim", "glb", "csv"), map(str, files),
                                                            strict=True))})
    tally["ok"] += 1


HANDLERS = {"reconstruct": handle_reconstruct, "animate": handle_animate}


def run_job(session: Session, rid: str, req: dict) -> None:
    """One queued request through its handler, ending with "done"; errors become "error" events."""
    tally = {"ok": 0, "failed": 0}
    cancelled = False
    try:
        HANDLERS[req["cmd"]](session, rid, req, tally)
    except Cancelled:
        cancelled = True
    except (MlafaceError, ValueError, TypeError) as e:
        tally["failed"] += 1
        session.send({"id": rid, "event": "error", "message": str(e)})
    except Exception as e:  # a bug: report it and keep serving
        tally["failed"] += 1
        session.send({"id": rid, "event": "error", "message": f"internal error: {type(e).__name__}: {e}"})
    session.send({"id": rid, "event": "done", **tally, "cancelled": cancelled})


def serve(inp: TextIO, out: TextIO, options: ReconstructOptions) -> int:
    """Read requests from inp until "shutdown" or its end; -> the exit status."""
    session = Session(out, options)
    session.send({"id": None, "event": "ready", **session.status})
    jobs: queue.Queue = queue.Queue()

    def runner() -> None:
        while (job := jobs.get()) is not None:
            rid, req = job
            if session.stop_check(rid):
                session.send({"id": rid, "event": "done", "ok": 0, "failed": 0, "cancelled": True})
            else:
                run_job(session, rid, req)

    thread = threading.Thread(target=runner, name="mlaface-worker", daemon=True)
    thread.start()
    pending: list[str] = []
    shutdown_id = None
    for line in inp:
        if not line.strip():
            continue
        try:
            req = decode_request(line)
        except ProtocolError as e:
            session.send({"id": e.request_id, "event": "error", "message": str(e)})
            continue
        rid, cmd = req["id"], req["cmd"]
        if cmd == "status":
            session.send({"id": rid, "event": "status", **session.status})
        elif cmd in HANDLERS:
            if session.rec is None:
                session.send({"id": rid, "event": "error", "message": f"the worker could not start: "
                                                                      f"{session.load_error}"})
                session.send({"id": rid, "event": "done", "ok": 0, "failed": 0, "cancelled": False})
            else:
                pending.append(rid)
                jobs.put((rid, req))
        elif cmd == "cancel":
            session.cancelled.add(req["target"])
            session.send({"id": rid, "event": "ok"})
        else:
            shutdown_id = rid
            break
    session.cancelled.update(pending)  # end of input or shutdown: stop what is running and queued
    jobs.put(None)
    thread.join()
    session.send({"id": shutdown_id, "event": "bye"})
    return 0
