"""Setting the add-on up without a terminal, in real Blender (bpy 4.5, headless): the buttons are greyed with their
reason, offline mode refuses to download, Install Backend makes the private environment from a local package
folder (no network) with the wheel inside the zip, a cancelled install is repaired by the next, the face model is
installed from a file, a photo is reconstructed through the worker of that environment, and Uninstall removes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import FACEKIT_ARCHIVE, SHARED_DATA

os.environ.setdefault("BLENDER_USER_RESOURCES", tempfile.mkdtemp(prefix="mlaface-blender-"))
bpy = pytest.importorskip("bpy", reason="bpy is not installed (extra: blender)")
pytest.importorskip("dlib", reason="the dlib extra is not installed")
ADDON = "bl_ext.user_default.mlaface"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    if not FACEKIT_ARCHIVE.is_file():
        pytest.skip(f"{FACEKIT_ARCHIVE} is absent")
    from build_addon import build

    zip_path = build(tmp_path_factory.mktemp("dist"))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    assert bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default",
                                                    enable_on_install=True) == {"FINISHED"}
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.device, prefs.fit_steps, prefs.texture_size = "cpu", 20, 512
    session = sys.modules[f"{ADDON}.session"]
    yield prefs, session
    bpy.ops.mlaface.uninstall_backend()
    bpy.ops.preferences.addon_disable(module=ADDON)


def test_from_a_zip_to_a_head(fresh):
    prefs, session = fresh
    folder = session.user_folder()
    # nothing installed: the reconstruct buttons are greyed, and say why
    assert not bpy.ops.mlaface.reconstruct.poll()
    with pytest.raises(RuntimeError, match="Backend: missing: press Install Backend"):
        bpy.ops.mlaface.reconstruct(filepath=str(SHARED_DATA / "faces" / "takeo.ppm"))
    # offline, nothing is downloaded
    bpy.context.preferences.system.use_online_access = False
    with pytest.raises(RuntimeError, match="Blender is set to work offline"):
        bpy.ops.mlaface.install_backend()
    assert not (folder / "backend-env").exists()

    # the wheel inside the zip, installed from a local folder over this interpreter's packages (no network)
    wheels = session.extension_folder() / "wheels"
    prefs.package_source, prefs.reuse_site_packages, prefs.base_python = str(wheels), True, sys.executable
    env = sys.modules[f"{ADDON}.backend_env"]
    plan = env.Plan(sys.executable, folder, env.bundled_wheel(session.extension_folder()), "cpu", str(wheels), True)
    installer = env.Installer(plan).start()
    while installer.progress.stage in ("idle",):
        time.sleep(0.05)
    installer.cancel()  # mid-install
    installer.thread.join()
    assert installer.progress.ok is False and "cancelled" in env.read_state(folder)["error"]
    assert not session.backend_state(prefs)[0]

    start = time.perf_counter()
    assert bpy.ops.mlaface.install_backend() == {"FINISHED"}  # repairs what the cancel left
    seconds = time.perf_counter() - start
    state = env.read_state(folder)
    assert state["ok"] and state["mlaface"] == "0.1.0" and state["cuda"] is False, state
    ready, text = session.backend_state(prefs)
    assert ready and "mlaface 0.1.0" in text and "CPU" in text
    python = env.env_python(folder / "backend-env")
    where = subprocess.run([str(python), "-c", "import backend; print(backend.__file__)"], capture_output=True,
                           text=True, cwd=folder).stdout
    assert str(folder / "backend-env") in where  # the wheel's backend, not this checkout's
    log = (folder / "install.log").read_text()
    assert "--dry-run" in log and "mlaface" in log
    print(f"install from the local folder: {seconds:.0f} s")

    # the face model from a file, then a photo through the worker of that environment
    assert not bpy.ops.mlaface.reconstruct.poll()  # no face model yet
    assert bpy.ops.mlaface.install_model_file(filepath=str(FACEKIT_ARCHIVE)) == {"FINISHED"}
    assert session.model_state(prefs)[0] and (folder / "face-model.npz").is_file()
    temp_before = set(Path(tempfile.gettempdir()).glob("mlaface-*"))
    assert bpy.ops.mlaface.reconstruct(filepath=str(SHARED_DATA / "faces" / "takeo.ppm")) == {"FINISHED"}
    assert "takeo" in bpy.data.objects and len(bpy.data.objects["takeo"].data.shape_keys.key_blocks) == 54
    assert session.STATUS["text"].startswith("mlaface 0.1.0")
    assert set(Path(tempfile.gettempdir()).glob("mlaface-*")) <= temp_before  # the result folder is removed
    # uninstall removes the environment and the model, nothing else
    assert bpy.ops.mlaface.uninstall_backend() == {"FINISHED"}
    assert not (folder / "backend-env").exists() and not (folder / "face-model.npz").exists()
    assert json.dumps(session.backend_state(prefs)).count("missing") == 1
