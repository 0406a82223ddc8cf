"""The add-on's installer without Blender: what a failed check says, and what Uninstall removes."""

from __future__ import annotations

from blender_addon.backend_env import _pip_error, read_state, uninstall

PIP_OUT = """Looking in links: /wheels
Processing ./mlaface-0.1.0-py3-none-any.whl
ERROR: Could not find a version that satisfies the requirement dlib-bin>=19.24 (from versions: none)
ERROR: No matching distribution found for dlib-bin>=19.24
"""


def test_a_missing_wheel_is_named():
    message = _pip_error("check", PIP_OUT)
    assert message.startswith("check: no wheel for the environment's Python and this platform: dlib-bin>=19.24")
    assert _pip_error("torch", "a\nb\nERROR: disk full\n") == "torch failed: a / b / ERROR: disk full"


def test_uninstall_removes_only_its_own_files(tmp_path):
    (tmp_path / "backend-env" / "bin").mkdir(parents=True)
    (tmp_path / "face-model.npz").write_bytes(b"x")
    (tmp_path / "install.json").write_text('{"ok": true, "mlaface": "0.1.0"}')
    (tmp_path / "my-notes.txt").write_text("mine")
    assert read_state(tmp_path)["mlaface"] == "0.1.0"
    assert uninstall(tmp_path) == ["backend-env", "face-model.npz", "install.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["my-notes.txt"] and read_state(tmp_path) == {}
