"""`mlaface worker`: a long-lived process for the Blender add-on, speaking backend/io/worker_protocol.py (JSON lines on
stdin/stdout). The face model, landmark provider and network load once, at start; requests queue and run one at
a time on a thread, so cancel requests are read while a reconstruction runs."""

from __future__ import annotations

import queue
import threading
from typing import TextIO

from .. import __version__
from ..reconstruct.batch import Cancelled, parse_formats, prepare_output, reconstruct_batch
from ..io.errors import MlafaceError
from ..io.images import find_photos
from ..reconstruct.pipeline import ReconstructOptions, Reconstructor
from ..io.worker_protocol import PROTOCOL_VERSION, ProtocolError, decode_request, encode

RUN_OPTIONS = {"fit_steps": int, "texture_size": int, "all_faces": bool}
CLIP_OPTIONS = {"smooth": float, "start": int, "end": int, "step": int, "fps": float}


def serve(inp: TextIO, out: TextIO, options: ReconstructOptions) -> int:
    lock = threading.Lock()

    def send(message: dict) -> None:
        with lock:
            out.write(encode(message))
            out.flush()

    try:
        rec, load_error = Reconstructor(options), None
    except MlafaceError as e:
        rec, load_error = None, str(e)
    status = {"protocol": PROTOCOL_VERSION, "mlaface": __version__, "ok": rec is not None, "error": load_error,
              "device": str(rec.device) if rec else options.device,
              "landmarks": rec.provider.name if rec else None,
              "weights": str(rec.weights) if rec and rec.weights else None}
    send({"id": None, "event": "ready", **status})
    jobs: queue.Queue = queue.Queue()
    cancelled: set[str] = set()

    def run_clip(rid: str, req: dict) -> None:
        from ..clip.animate import AnimateOptions, animate_to_folder

        def progress(stage: str, done: int, total: int) -> None:
            if rid in cancelled:
                raise Cancelled
            send({"id": rid, "event": "progress", "done": done, "total": total, "photo": req["clip"],
                  "stage": stage})

        opts = req.get("options", {})
        options = AnimateOptions(**{k: kind(opts[k]) for k, kind in CLIP_OPTIONS.items() if opts.get(k) is not None})
        files, _, report = animate_to_folder(rec, req["clip"], req["output"], options, progress)
        send({"id": rid, "event": "result", "clip": req["clip"], "frames": report["frames"], "lost": report["lost"],
              "files": dict(zip(("npz", "anim", "glb", "csv"), map(str, files), strict=True))})

    def run(rid: str, req: dict) -> None:
        ok = failed = 0
        try:
            if req["cmd"] == "animate":
                run_clip(rid, req)
                send({"id": rid, "event": "done", "ok": 1, "failed": 0, "cancelled": False})
                return
            opts = req.get("options", {})
            run_rec = rec.with_options(**{k: kind(opts[k]) for k, kind in RUN_OPTIONS.items() if k in opts})
            formats = parse_formats(opts.get("formats", ["npz"]))
            photos = find_photos(req["photos"])
            folder = prepare_output(req["output"])
            for event in reconstruct_batch(run_rec, photos, folder, formats, bool(opts.get("same_person")),
                                           should_stop=lambda: rid in cancelled):
                ok += event["event"] == "result"
                failed += event["event"] == "error"
                send({"id": rid, **event})
        except Cancelled:
            send({"id": rid, "event": "done", "ok": ok, "failed": failed, "cancelled": True})
            return
        except (MlafaceError, ValueError, TypeError) as e:
            failed += 1
            send({"id": rid, "event": "error", "message": str(e)})
        except Exception as e:  # a bug: report it and keep serving
            failed += 1
            send({"id": rid, "event": "error", "message": f"internal error: {type(e).__name__}: {e}"})
        send({"id": rid, "event": "done", "ok": ok, "failed": failed, "cancelled": False})

    def runner() -> None:
        while (job := jobs.get()) is not None:
            rid, req = job
            if rid in cancelled:
                send({"id": rid, "event": "done", "ok": 0, "failed": 0, "cancelled": True})
            else:
                run(rid, req)

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
            send({"id": e.request_id, "event": "error", "message": str(e)})
            continue
        rid, cmd = req["id"], req["cmd"]
        if cmd == "status":
            send({"id": rid, "event": "status", **status})
        elif cmd in ("reconstruct", "animate"):
            if rec is None:
                send({"id": rid, "event": "error", "message": f"the worker could not start: {load_error}"})
                send({"id": rid, "event": "done", "ok": 0, "failed": 0, "cancelled": False})
            else:
                pending.append(rid)
                jobs.put((rid, req))
        elif cmd == "cancel":
            cancelled.add(req["target"])
            send({"id": rid, "event": "ok"})
        else:
            shutdown_id = rid
            break
    cancelled.update(pending)  # end of input or shutdown: stop what is running and queued
    jobs.put(None)
    thread.join()
    send({"id": shutdown_id, "event": "bye"})
    return 0

