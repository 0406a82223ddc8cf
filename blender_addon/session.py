"""The one worker of a Blender session, started on demand and restarted when its settings change (no bpy types
here beyond reading preferences passed in)."""

from __future__ import annotations

from pathlib import Path

from .worker_client import WorkerClient

STATUS = {"text": "worker not started"}
_worker: dict = {"client": None, "key": None}


def backend_root() -> Path:
    """The folder holding the `backend` package: this extension's (bundled by build_addon.py), or the checkout's."""
    here = Path(__file__).resolve().parent
    return here if (here / "backend").is_dir() else here.parent


def worker(prefs) -> WorkerClient:
    """The running worker for these preferences; starts one (WorkerError when it cannot)."""
    args = ["--device", prefs.device] + (["--model", prefs.model_path] if prefs.model_path else [])
    key = (prefs.python_path, tuple(args))
    client = _worker["client"]
    if client is not None and client.alive and _worker["key"] == key:
        return client
    stop()
    client = WorkerClient(prefs.python_path, backend_root(), args)
    STATUS["text"] = "starting the worker..."
    ready = client.start()
    _worker.update(client=client, key=key)
    if ready["ok"]:
        STATUS["text"] = (f"mlaface {ready['mlaface']} on {ready['device']}, landmarks {ready['landmarks']}, "
                          f"network: {'trained' if ready['weights'] else 'fitting only'}")
    else:
        STATUS["text"] = f"worker started but not ready: {ready['error']}"
    return client


def stop() -> None:
    client = _worker["client"]
    if client is not None:
        client.close()
    _worker.update(client=None, key=None)
    STATUS["text"] = "worker not started"
