"""The add-on's side of the worker: starts `python -m backend worker` in the interpreter the user chose (one
with torch and mlaface's dependencies), with the backend bundled in this extension first on its path, and
exchanges protocol lines (backend/io/worker_protocol.py) with it. No bpy: tested with plain pytest as well.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path


class WorkerError(RuntimeError):
    """The worker is missing, crashed, or answered something unexpected."""


class WorkerClient:
    def __init__(self, python: str, backend_root: str | Path, args: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.python, self.backend_root, self.args = python, str(backend_root), list(args or [])
        self.env = dict(env or {})
        self.proc: subprocess.Popen | None = None
        self.ready: dict = {}
        self._events: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        self._next_id = 0

    def start(self, timeout: float = 180.0) -> dict:
        """Start the worker and wait for its "ready" event; WorkerError with its stderr when it does not come."""
        if not self.python or not Path(self.python).is_file():
            raise WorkerError(f"Python interpreter not found: {self.python!r}. Set it in the add-on preferences "
                              f"to a Python with mlaface installed (pip install mlaface)")
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (self.backend_root, env.get("PYTHONPATH", "")) if p)
        try:
            self.proc = subprocess.Popen([self.python, "-m", "backend", "worker", *self.args],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True, bufsize=1, env=env)
        except OSError as e:
            raise WorkerError(f"could not start {self.python}: {e}") from None
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        event = self._next_event(timeout)
        if event.get("event") != "ready":
            raise WorkerError(f"the worker did not start: {event}")
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
            self.proc.stdin.write(json.dumps({"id": rid, "cmd": cmd, **fields}) + "\n")
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
            if event["event"] in ("done", "status", "ok", "bye"):  # a request's last event
                return events

    def close(self) -> None:
        if self.alive:
            try:
                self.send("shutdown")
                self.proc.wait(timeout=30)
            except (WorkerError, subprocess.TimeoutExpired):
                self.proc.kill()
        self.proc = None
