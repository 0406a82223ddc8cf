"""The add-on's side of the worker: starts `python -m backend worker` in an interpreter where mlaface is installed
(the add-on's private environment, or one the user chose) and exchanges protocol lines with it through
backend/io/worker_protocol.py (its encoder, version and the events that end a request). No bpy: tested with plain
pytest as well.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import tempfile
import threading
import time
from pathlib import Path

try:
    from .backend.io import worker_protocol as protocol  # inside the extension (bundled by build_addon.py)
except ImportError:
    from backend.io import worker_protocol as protocol  # in the checkout


class WorkerError(RuntimeError):
    """The worker is missing, crashed, or answered something unexpected."""


class WorkerClient:
    def __init__(self, python: str, args: list[str] | None = None, env: dict[str, str] | None = None,
                 version: str | None = None):
        """version: the mlaface version the worker must run (the add-on's own); None accepts any."""
        self.python, self.args, self.version = python, list(args or []), version
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.ready: dict = {}
        self._events: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._next_id = 0

    def start(self, timeout: float = 180.0) -> dict:
        """Start the worker and wait for its "ready" event; WorkerError with its stderr when it does not come."""
        if not self.python or not Path(self.python).is_file():
            raise WorkerError(f"Python interpreter not found: {self.python!r}. Press Install Backend in the add-on "
                              f"preferences, or choose a Python with mlaface installed")
        env = {**os.environ, **self.env}
        try:
            self.proc = subprocess.Popen([self.python, "-m", "backend", "worker", *self.args],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, bufsize=1, env=env, cwd=tempfile.gettempdir())
        except OSError as e:
            raise WorkerError(f"could not start {self.python}: {e}") from None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        event = self._next_event(timeout)
        if event.get("event") != "ready":
            raise WorkerError(f"the worker did not start: {event}")
        if event.get("protocol") != protocol.PROTOCOL_VERSION:
            self.close()
            raise WorkerError(f"the worker speaks protocol {event.get('protocol')}, this add-on "
                              f"{protocol.PROTOCOL_VERSION}: install the backend again")
        if self.version and event.get("mlaface") != self.version:
            event = {**event, "ok": False, "error": f"the backend is mlaface {event.get('mlaface')} and this add-on "
                                                    f"{self.version}: press Install Backend to update it"}
        self.ready = event
        return event

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            try:
                self._events.put(json.loads(line))
            except json.JSONDecodeError:
                self._stderr.append(line)
        self._events.put({"event": "exit"})

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr.append(line)
            del self._stderr[:-50]

    def _next_event(self, timeout: float) -> dict:
        try:
            event = self._events.get(timeout=timeout)
        except queue.Empty:
            raise WorkerError(f"the worker sent nothing for {timeout:.0f} s") from None
        if event.get("event") == "exit":
            tail = "".join(self._stderr[-8:]).strip()
            raise WorkerError(f"the worker stopped (exit status {self.proc.wait()}){': ' + tail if tail else ''}")
        return event

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send(self, cmd: str, **fields) -> str:
        """Send a request; returns its id."""
        if not self.alive:
            raise WorkerError("the worker is not running")
        self._next_id += 1
        rid = f"r{self._next_id}"
        try:
            self.proc.stdin.write(protocol.encode({"id": rid, "cmd": cmd, **fields}))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise WorkerError("the worker stopped; start it again") from None
        return rid

    def poll(self) -> list[dict]:
        """Events received so far, without waiting; a crash raises WorkerError."""
        out = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return out
            if event.get("event") == "exit":
                self._events.put(event)
                self._next_event(0.1)
            out.append(event)

    def wait(self, rid: str, timeout: float = 3600.0, on_event=None) -> list[dict]:
        """All events of request rid up to its "done" (or its single reply), blocking."""
        events, end = [], time.monotonic() + timeout
        while True:
            event = self._next_event(max(0.1, end - time.monotonic()))
            if event.get("id") != rid:
                continue
            events.append(event)
            if on_event:
                on_event(event)
            if event["event"] in protocol.FINAL_EVENTS:
                return events

    def close(self) -> None:
        if self.alive:
            try:
                self.send("shutdown")
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc = None
