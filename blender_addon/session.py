"""The add-on's state in one Blender session: where the backend and face model are, whether reconstruction can
run (and why not), the install in progress, and the one worker, started on demand and restarted when its settings
change. bpy only for the extension's user folder."""

from __future__ import annotations

from pathlib import Path

from .backend import __version__
from .backend_env import MODEL_FILE, Installer, folder_python, read_state
from .worker_client import WorkerClient

STATUS = {"text": "worker not started"}
_worker: dict = {"client": None, "key": None}
INSTALL: dict = {"installer": None}  # the Installer of this session, if one ran


def user_folder() -> Path:
    """The extension's own folder for data (Blender 4.2+): the private environment, the face model, the log."""
    import bpy

    return Path(bpy.utils.extension_path_user(__package__, create=True))


def extension_folder() -> Path:
    return Path(__file__).resolve().parent


def installing() -> Installer | None:
    installer = INSTALL["installer"]
    return installer if installer is not None and installer.progress.running else None


def worker_python(prefs) -> str:
    """The interpreter the user chose, else the private environment's."""
    return prefs.python_path or str(folder_python(user_folder()))


def model_path(prefs) -> str:
    """The face model the user chose, else the one the add-on installed, else "" (the backend's own default)."""
    if prefs.model_path:
        return prefs.model_path
    installed = user_folder() / MODEL_FILE
    return str(installed) if installed.is_file() else ""


def backend_state(prefs) -> tuple[bool, str]:
    """(ready, what the UI says about the backend)."""
    if prefs.python_path:
        return True, f"Backend: your interpreter {Path(prefs.python_path).name}"
    running = installing()
    if running is not None:
        p = running.progress
        return False, f"Backend: installing {p.percent}% ({p.stage}{': ' + p.package if p.package else ''})"
    state = read_state(user_folder())
    if state.get("ok") and Path(worker_python(prefs)).is_file():
        return True, (f"Backend: ready (mlaface {state['mlaface']}, torch {state['torch']}, "
                      f"{'CUDA' if state['cuda'] else 'CPU'})")
    if state.get("error"):
        return False, f"Backend: not installed ({state['error']})"
    return False, "Backend: missing: press Install Backend in the add-on's preferences"


def model_state(prefs) -> tuple[bool, str]:
    path = model_path(prefs)
    if path and Path(path).is_file():
        return True, f"Face model: ready ({Path(path).name})"
    if path:
        return False, f"Face model: {path} not found"
    if prefs.python_path:  # the user's own interpreter may have one in its cache; the worker says
        return True, "Face model: the backend's default (mlaface model install)"
    return False, "Face model: missing: press Download Face Model in the add-on's preferences"


def readiness(prefs) -> str | None:
    """Why reconstruction cannot run now, or None when it can."""
    for ready, text in (backend_state(prefs), model_state(prefs)):
        if not ready:
            return text
    return None


def worker(prefs) -> WorkerClient:
    """The running worker for these preferences; starts one (WorkerError when it cannot)."""
    model = model_path(prefs)
    args = ["--device", prefs.device] + (["--model", model] if model else [])
    python = worker_python(prefs)
    key = (python, tuple(args))
    client = _worker["client"]
    if client is not None and client.alive and _worker["key"] == key:
        return client
    stop()
    client = WorkerClient(python, args, version=None if prefs.python_path else __version__)
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
