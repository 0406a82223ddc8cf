"""`mlaface worker`, the real subprocess, driven over its JSON-lines protocol: malformed lines, unknown commands,
status, a reconstruct cancelled mid-batch, shutdown; and a worker whose model cannot load."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import SHARED_DATA, Worker

from backend.io.worker_protocol import PROTOCOL_VERSION, ProtocolError, decode_request, encode

pytest.importorskip("dlib", reason="the dlib extra is not installed")
FACES = SHARED_DATA / "faces"


def test_protocol_lines():
    assert decode_request('{"id": "1", "cmd": "status"}') == {"id": "1", "cmd": "status"}
    for line, message in [("not json", "not JSON"), ("[1]", "not a JSON object"), ('{"cmd": "status"}', "id"),
                          ('{"id": "2", "cmd": "dance"}', "unknown command 'dance'"),
                          ('{"id": "3", "cmd": "reconstruct", "photos": []}', "non-empty list"),
                          ('{"id": "4", "cmd": "cancel"}', "target")]:
        with pytest.raises(ProtocolError, match=message):
            decode_request(line)
    assert encode({"a": 1}) == '{"a":1}\n'


def test_worker_session(real_model_path, tmp_path):
    if not FACES.is_dir():
        pytest.skip(f"{FACES} is absent")
    w = Worker("--model", str(real_model_path))
    ready = w.wait_for(lambda e: e["event"] == "ready")
    assert ready["ok"] and ready["protocol"] == PROTOCOL_VERSION and ready["landmarks"] == "dlib"

    w.send("this is not json\n")
    w.wait_for(lambda e: e["event"] == "error" and e["id"] is None and "malformed" in e["message"])
    w.send({"id": "u", "cmd": "fly"})
    w.wait_for(lambda e: e["id"] == "u" and e["event"] == "error" and "unknown command" in e["message"])
    w.send({"id": "s", "cmd": "status"})
    assert w.wait_for(lambda e: e["id"] == "s")["event"] == "status"

    photos = [str(FACES / "takeo.ppm"), str(FACES / "einstein.jpg"), str(FACES / "lenna.png")]
    out = tmp_path / "out"
    w.send({"id": "r1", "cmd": "reconstruct", "photos": photos, "output": str(out),
            "options": {"fit_steps": 30, "texture_size": 512, "formats": ["npz"]}})
    first = w.wait_for(lambda e: e["id"] == "r1" and e["event"] == "result")
    assert first["photo"] == photos[0] and Path(first["files"]["npz"]).is_file()
    w.send({"id": "c1", "cmd": "cancel", "target": "r1"})
    w.wait_for(lambda e: e["id"] == "c1" and e["event"] == "ok")
    done = w.wait_for(lambda e: e["id"] == "r1" and e["event"] == "done")
    assert done["cancelled"] and done["ok"] >= 1
    written = sorted(p.name for p in out.iterdir())
    assert "takeo.npz" in written and "lenna.npz" not in written  # stopped before the last photo
    assert not any(name.endswith(".partial") for name in written)

    for rid, options, message in [
            ("o1", {"fit_steps": -5, "texture_size": 1000000000}, "texture_size must be between 256 and 4096"),
            ("o2", {"fit_steps": 20000}, "fit_steps must be between 0 and 10000, got 20000"),
            ("o3", {"fit_steps": "ten"}, "option fit_steps: expected int, got 'ten'"),
            ("o4", {"all_faces": 1}, "option all_faces: expected bool, got 1"),
            ("o5", {"colour": "red"}, "unknown option(s) colour")]:
        w.send({"id": rid, "cmd": "reconstruct", "photos": photos[:1], "output": str(tmp_path / rid),
                "options": options})
        assert message in w.wait_for(lambda e, rid=rid: e["id"] == rid and e["event"] == "error")["message"]
        assert w.wait_for(lambda e, rid=rid: e["id"] == rid and e["event"] == "done")["ok"] == 0
        assert not (tmp_path / rid).exists()  # refused before anything was made
    w.send({"id": "o6", "cmd": "animate", "clip": photos[0], "output": str(tmp_path / "o6"),
            "options": {"smooth": 3}})
    assert "smooth must be between 0 and 1, got 3.0" in w.wait_for(
        lambda e: e["id"] == "o6" and e["event"] == "error")["message"]

    w.send({"id": "r2", "cmd": "reconstruct", "photos": [str(tmp_path / "missing.jpg")], "output": str(out)})
    err = w.wait_for(lambda e: e["id"] == "r2" and e["event"] == "error")
    assert "missing.jpg: file not found" in err["message"]
    assert not w.wait_for(lambda e: e["id"] == "r2" and e["event"] == "done")["cancelled"]

    w.send({"id": "bye", "cmd": "shutdown"})
    w.wait_for(lambda e: e["event"] == "bye" and e["id"] == "bye")
    assert w.proc.wait(timeout=30) == 0


def test_worker_without_model_reports_and_keeps_serving(tmp_path):
    w = Worker("--model", str(tmp_path / "absent.npz"))
    ready = w.wait_for(lambda e: e["event"] == "ready")
    assert not ready["ok"] and "absent.npz: face model file not found" in ready["error"]
    w.send({"id": "r", "cmd": "reconstruct", "photos": ["a.jpg"], "output": str(tmp_path)})
    assert "could not start" in w.wait_for(lambda e: e["id"] == "r" and e["event"] == "error")["message"]
    w.proc.stdin.close()  # end of input: the worker says bye and exits
    w.wait_for(lambda e: e["event"] == "bye")
    assert w.proc.wait(timeout=30) == 0


def test_add_on_client_reports_a_killed_or_missing_worker(real_model_path, tmp_path):
    """The add-on's bpy-free worker client: a wrong interpreter and a worker killed mid-request both end in a
    WorkerError that says what happened (the add-on shows it in Blender)."""
    from blender_addon.worker_client import WorkerClient, WorkerError

    with pytest.raises(WorkerError, match="Python interpreter not found"):
        WorkerClient(str(tmp_path / "python9")).start()
    old = WorkerClient(sys.executable, ["--model", str(real_model_path)], version="0.0.1")
    ready = old.start()  # a backend of another version: started, not ready, and the message says what to do
    assert not ready["ok"] and "press Install Backend" in ready["error"]
    old.close()
    client = WorkerClient(sys.executable, ["--model", str(real_model_path)])
    assert client.start()["ok"]
    assert client.wait(client.send("status"))[0]["event"] == "status"
    rid = client.send("reconstruct", photos=[str(FACES / "takeo.ppm")], output=str(tmp_path / "out"))
    client.proc.kill()
    with pytest.raises(WorkerError, match=r"the worker stopped \(exit status -9\)"):
        client.wait(rid, timeout=60)
    with pytest.raises(WorkerError, match="not running"):
        client.send("status")
