"""build_addon.py writes an installable zip: the manifest at its root and the backend bundled."""

from __future__ import annotations

import tomllib
import zipfile

import backend
from build_addon import ROOT, build


def test_zip_layout(tmp_path):
    out = build(tmp_path)
    assert out.name == f"mlaface-{backend.__version__}.zip"
    names = zipfile.ZipFile(out).namelist()
    assert "blender_manifest.toml" in names and "__init__.py" in names
    assert "backend/model/face_model.py" in names and "backend/serve/cli.py" in names
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_one_version_everywhere():
    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert manifest["version"] == project["version"] == backend.__version__
