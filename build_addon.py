"""Build the installable Blender extension: `python build_addon.py` writes dist/mlaface-<version>.zip holding
the add-on (blender_addon/) at the zip's root, the numpy-only part of the backend it reads results with
(backend/io, backend/rig), and mlaface's wheel (wheels/mlaface-<version>-py3-none-any.whl, with the network
weights) that the add-on's Install Backend puts into its private environment, so that add-on and backend versions
always match; then checks it with Blender's own extension validator (bl_pkg's `blender_ext.py validate`) where bpy
is installed."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
SKIP = {"__pycache__"}
READERS = ("backend/__init__.py", "backend/io", "backend/rig")  # what the add-on itself imports (numpy only)


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.parts) and path.suffix != ".pyc":
            yield path


def build(out_dir: Path) -> Path:
    version = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())["version"]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"mlaface-{version}.zip"
    tmp = out.with_suffix(".zip.partial")
    with tempfile.TemporaryDirectory() as wheels, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in _files(ROOT / "blender_addon"):
            z.write(path, path.relative_to(ROOT / "blender_addon").as_posix())
        for part in READERS:
            for path in [ROOT / part] if (ROOT / part).is_file() else _files(ROOT / part):
                z.write(path, path.relative_to(ROOT).as_posix())
        z.write(wheel(Path(wheels)), f"wheels/mlaface-{version}-py3-none-any.whl")
    tmp.replace(out)
    return out


def wheel(folder: Path) -> Path:
    """mlaface's wheel, built from this checkout (setuptools from the running Python, no download)."""
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(folder), str(ROOT)], capture_output=True, text=True)
    built = sorted(folder.glob("mlaface-*.whl"))
    if r.returncode or not built:
        raise SystemExit(f"building mlaface's wheel failed:\n{r.stdout}{r.stderr}")
    return built[-1]


def blender_validator() -> Path | None:
    """Blender's extension command-line tool inside the bpy package, if bpy is installed."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        return None
    hits = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*/scripts/addons_core/bl_pkg/cli/"
                                                                          "blender_ext.py"))
    return hits[-1] if hits else None


def validate(zip_path: Path) -> str:
    """Run Blender's validator on the zip: its message; SystemExit when the zip is invalid."""
    tool = blender_validator()
    if tool is None:
        return "not validated (bpy is not installed: pip install 'mlaface[blender]')"
    r = subprocess.run([sys.executable, str(tool), "validate", str(zip_path)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{zip_path}: Blender's extension validator rejects it:\n{r.stdout}{r.stderr}")
    return "valid (Blender's extension validator)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out-dir", type=Path, default=ROOT / "dist")
    out = build(parser.parse_args().out_dir)
    print(f"wrote {out}: {validate(out)}")


if __name__ == "__main__":
    main()
