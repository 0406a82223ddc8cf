"""The worker protocol, version 1: JSON lines between the Blender add-on and `mlaface worker` (no network port).
Standard library only: the add-on imports it in Blender's Python, which has no torch.

One JSON object per line each way, UTF-8. Requests (add-on -> worker) carry an "id" (a string the sender picks) and
a "cmd"; every event the worker sends about a request carries the same "id".

Requests:
  {"id", "cmd": "status"}                      -> one "status" event
  {"id", "cmd": "reconstruct", "photos": [paths], "output": folder,
   "options": {"fit_steps": int, "texture_size": int, "all_faces": bool, "same_person": bool,
               "formats": ["npz", "obj", "glb", "overlay"]}}   (options optional)
                                               -> "progress" / "result" / "error" events, then one "done"
  {"id", "cmd": "animate", "clip": path (video or folder of numbered frames), "output": folder,
   "options": {"smooth": float, "start": int, "end": int, "step": int, "fps": float}}   (options optional)
                                               -> "progress" events (stage "track" or "fit", done and total frames),
                                                  one "result" (with "clip" instead of "photo", files "npz", "anim",
                                                  "glb", "csv", and "frames", "lost": [[first, last]]) or "error",
                                                  then one "done"
  {"id", "cmd": "cancel", "target": id}        -> "ok"; the target stops at its next check (between photos, every
                                                  10 fitting steps, every clip frame) and ends with "done" and
                                                  "cancelled": true; files in progress are not written
  {"id", "cmd": "shutdown"}                    -> "bye", then the worker exits (also at end of input)
Events (worker -> add-on):
  {"id": null, "event": "ready", "protocol": 1, "mlaface": version, "ok": bool, "error": str|null, "device": str,
   "landmarks": str, "weights": str|null}      once, at start; ok is false when the model could not be loaded
  {"id", "event": "status", ...the fields of "ready"}
  {"id", "event": "progress", "done": int, "total": int, "photo": path, "stage": str}
  {"id", "event": "result", "photo": path, "face_index": int, "files": {format: path}, "landmark_nme": float}
  {"id", "event": "error", "photo": path (when about one photo), "message": str}
  {"id", "event": "done", "ok": int, "failed": int, "cancelled": bool}
  {"id", "event": "ok"} / {"id", "event": "bye"}
A line that is not a JSON object with a string "id" and a known "cmd" gets {"id": (its id or null), "event":
"error", "message": ...}; the worker keeps serving.
"""

from __future__ import annotations

import json

PROTOCOL_VERSION = 1
COMMANDS = ("status", "reconstruct", "animate", "cancel", "shutdown")
FINAL_EVENTS = ("done", "status", "ok", "bye")  # the last event of a request


class ProtocolError(ValueError):
    """A request line that does not follow the protocol; .request_id is its id when it had one."""

    def __init__(self, message: str, request_id: str | None = None):
        super().__init__(message)
        self.request_id = request_id


def encode(message: dict) -> str:
    """One protocol line, newline included."""
    return json.dumps(message, separators=(",", ":")) + "\n"


def decode_request(line: str) -> dict:
    """Parse and check one request line; ProtocolError says what is wrong."""
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as e:
        raise ProtocolError(f"malformed request (not JSON: {e.msg})") from None
    if not isinstance(msg, dict):
        raise ProtocolError("malformed request (not a JSON object)")
    rid = msg.get("id")
    if not isinstance(rid, str):
        raise ProtocolError("malformed request (\"id\" must be a string)")
    cmd = msg.get("cmd")
    if cmd not in COMMANDS:
        raise ProtocolError(f"unknown command {cmd!r}; known: {', '.join(COMMANDS)}", rid)
    if cmd == "reconstruct":
        photos, output, options = msg.get("photos"), msg.get("output"), msg.get("options", {})
        if not isinstance(photos, list) or not photos or not all(isinstance(p, str) for p in photos):
            raise ProtocolError("reconstruct needs \"photos\": a non-empty list of paths", rid)
        if not isinstance(output, str):
            raise ProtocolError("reconstruct needs \"output\": a folder path", rid)
        if not isinstance(options, dict):
            raise ProtocolError("\"options\" must be an object", rid)
    if cmd == "animate":
        if not isinstance(msg.get("clip"), str) or not isinstance(msg.get("output"), str):
            raise ProtocolError("animate needs \"clip\" (a video or frame folder) and \"output\" (a folder)", rid)
        if not isinstance(msg.get("options", {}), dict):
            raise ProtocolError("\"options\" must be an object", rid)
    if cmd == "cancel" and not isinstance(msg.get("target"), str):
        raise ProtocolError("cancel needs \"target\": the id of a reconstruct request", rid)
    return msg
