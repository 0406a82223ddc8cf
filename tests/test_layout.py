"""The boundaries of the layout, checked on the code itself: backend/io and backend/rig import neither torch nor bpy
(the Blender add-on runs them in Blender's Python), the add-on uses only those two (build_addon.py bundles just
them), and backend never imports training or bpy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _imports(path: Path) -> list[tuple[int, str]]:
    """(level, dotted name) of every import in a file, `from . import x` as (1, "x")."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(0, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            out += [(node.level, f"{base}.{a.name}" if base else a.name) for a in node.names] if node.level \
                else [(0, base)]
    return out


def test_io_imports_neither_torch_nor_bpy():
    """Every module of backend/io and backend/rig, the add-on's worker client and installer, imported in a fresh
    interpreter."""
    code = """
import importlib, pkgutil, sys
import backend.io, backend.rig
for package in (backend.io, backend.rig):
    for m in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        importlib.import_module(m.name)
import blender_addon.worker_client, blender_addon.backend_env
loaded = sorted(n for n in ("torch", "bpy", "scipy") if n in sys.modules)
print(len(list(pkgutil.iter_modules(backend.io.__path__))), loaded)
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    count, loaded = r.stdout.split(" ", 1)
    assert int(count) >= 12 and loaded.strip() == "[]", r.stdout


def test_the_add_on_uses_only_backend_io():
    used = [(p.name, name) for p in sorted((REPO / "blender_addon").glob("*.py")) for level, name in _imports(p)
            if level == 1 and name.split(".")[0] == "backend"]
    allowed = ("backend.io.", "backend.rig.", "backend.__version__")
    assert used and all(name.startswith(allowed) for _, name in used), used
    assert not [(p.name, n) for p in (REPO / "blender_addon").glob("*.py") for _, n in _imports(p)
                if n.split(".")[0] == "torch"]


def test_backend_imports_neither_training_nor_bpy():
    bad = [(str(p.relative_to(REPO)), name) for p in sorted((REPO / "backend").rglob("*.py"))
           for level, name in _imports(p) if level == 0 and name.split(".")[0] in ("training", "bpy", "bpy_extras")]
    assert bad == []
