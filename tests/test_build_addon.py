"""build_addon.py writes an installable zip: the manifest at its root, the numpy-only readers the add-on imports,
and mlaface's wheel (the whole backend with its weights) for Install Backend."""

from __future__ import annotations

import io
import tomllib
import zipfile

import backend
from build_addon import ROOT, build


def test_zip_layout(tmp_path):
    out = build(tmp_path)
    assert out.name == f"mlaface-{backend.__version__}.zip"
    z = zipfile.ZipFile(out)
    names = z.namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "backend/io/face_result.py" in names and "backend/rig/retarget.py" in names
    assert not any(n.startswith(("backend/model/", "backend/serve/", "backend/weights/")) for n in names)  # torch
    wheel = zipfile.ZipFile(io.BytesIO(z.read(f"wheels/mlaface-{backend.__version__}-py3-none-any.whl")))
    inside = wheel.namelist()
    assert "backend/model/face_model.py" in inside and "backend/serve/cli.py" in inside
    assert "backend/weights/mlanet_r18.pt" in inside and "training/configs/mlanet_dw.toml" in inside
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_one_version_everywhere():
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"] == backend.__version__
