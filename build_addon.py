"""Build the installable Blender extension: `python build_addon.py` writes dist/mlaface-<version>.zip holding
the add-on (blender_addon/) at the zip's root and the backend package beside it, for the worker to run."""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent
SKIP = {"__pycache__"}


def _files(folder: Path):
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not SKIP.intersection(path.parts) and path.suffix != ".pyc":
            yield path


def build(out_dir: Path) -> Path:
    version = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text())["version"]
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"mlaface-{version}.zip"
    tmp = out.with_suffix(".zip.partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path in _files(ROOT / "blender_addon"):
            z.write(path, path.relative_to(ROOT / "blender_addon").as_posix())
        for path in _files(ROOT / "backend"):
            z.write(path, path.relative_to(ROOT).as_posix())
    tmp.replace(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--out-dir", type=Path, default=ROOT / "dist")
    print(f"wrote {build(parser.parse_args().out_dir)}")


if __name__ == "__main__":
    main()
