"""Where the face model file lives, and how it gets there.

Lookup order: an explicit path > the `MLAFACE_MODEL` environment variable > the user cache
(`$XDG_CACHE_HOME/mlaface` or `~/.cache/mlaface` on Linux, `~/Library/Caches/mlaface` on macOS,
`%LOCALAPPDATA%\\mlaface` on Windows). `install_model` converts ICT-FaceKit files into the cache;
`download_model` fetches the public archive at a pinned commit and checks it before converting.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ..io.errors import MlafaceError
from ..io.model_file import write_model
from .facekit import convert

MODEL_ENV = "MLAFACE_MODEL"
MODEL_FILENAME = "ict-facekit.npz"
WEIGHTS_ENV = "MLAFACE_WEIGHTS"
PACKAGED_WEIGHTS = Path(__file__).resolve().parents[1] / "weights"  # backend/weights
# the first variant with weights is used: mlanet_dw before mlanet_r18, as the whole path scores better with it on
# turned faces (README, What users get)
PREFERRED_VARIANTS = ("mlanet_r50", "mlanet_dw", "mlanet_r18")

ICT_FACEKIT_COMMIT = "da5f95a607f5e6b37755b38d3385d7f2853732e5"
ICT_FACEKIT_URL = f"https://github.com/ICT-VGL/ICT-FaceKit/archive/{ICT_FACEKIT_COMMIT}.zip"
# facekit.source_digest of the FaceXModel files at that commit. GitHub rebuilds archives on demand, so their bytes
# are not guaranteed stable; the digest of the files the converter reads is.
ICT_FACEKIT_DIGEST = "d19c88722f4f68a2ded3ca47b95968dc52322d169c3cb13aeb13a6f9659dc164"


def cache_dir() -> Path:
    """The per-user cache folder of mlaface (not created here)."""
    if sys.platform == "win32" and not os.environ.get("XDG_CACHE_HOME"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin" and not os.environ.get("XDG_CACHE_HOME"):
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mlaface"


def default_model_path() -> Path:
    return cache_dir() / "models" / MODEL_FILENAME


def resolve_model_path(path: str | Path | None = None) -> Path:
    """The face model file to use; MlafaceError with the fix when there is none."""
    if path is not None:
        where = Path(path)
    elif os.environ.get(MODEL_ENV):
        where = Path(os.environ[MODEL_ENV])
        if not where.is_file():
            raise MlafaceError(f"{where}: face model file not found (named by ${MODEL_ENV})")
    else:
        where = default_model_path()
        if not where.is_file():
            raise MlafaceError(
                "no face model installed. Run `mlaface model install --download` to fetch ICT-FaceKit (MIT), "
                "or `mlaface model install --from FaceXModel.tar.xz` for a local copy"
            )
    if not where.is_file():
        raise MlafaceError(f"{where}: face model file not found")
    return where


def find_network_weights(variant: str | None = None, path: str | Path | None = None) -> Path | None:
    """Trained weights of a network variant: `path` > $MLAFACE_WEIGHTS > the weights shipped in the package
    (backend/weights/VARIANT.pt) > the user cache (models/VARIANT.pt); None when there are none (the pipeline
    then fits the face model without a network). variant None: the first of PREFERRED_VARIANTS that has weights.
    A path that is named but missing is an error."""
    named = path if path is not None else os.environ.get(WEIGHTS_ENV) or None
    if named is not None:
        if not Path(named).is_file():
            raise MlafaceError(f"{named}: network weights not found")
        return Path(named)
    for name in PREFERRED_VARIANTS if variant is None else (variant,):
        for candidate in (PACKAGED_WEIGHTS / f"{name}.pt", cache_dir() / "models" / f"{name}.pt"):
            if candidate.is_file():
                return candidate
    return None


def install_model(source: str | Path, dest: str | Path | None = None,
                  expected_digest: str | None = None) -> Path:
    """Convert an ICT-FaceKit folder or archive and write the model file to `dest` (default: the cache).

    With `expected_digest`, the source files must match it (see facekit.source_digest), else nothing is written.
    """
    data = convert(source)
    if expected_digest is not None and data.source_digest != expected_digest:
        raise MlafaceError(
            f"{source}: the face model files do not match the pinned checksum "
            f"(got {data.source_digest}, expected {expected_digest}); nothing installed"
        )
    return write_model(Path(dest) if dest is not None else default_model_path(), data)


def download_model(url: str = ICT_FACEKIT_URL, expected_digest: str = ICT_FACEKIT_DIGEST,
                   dest: str | Path | None = None,
                   progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download the ICT-FaceKit archive, check it against `expected_digest`, convert and install it.

    progress(bytes_so_far, total_bytes_or_None) is called as the download goes. The archive is kept in a
    temporary file that is always removed.
    """
    dest_path = Path(dest) if dest is not None else default_model_path()
    dest_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest_path.parent, prefix=".download-", suffix=".zip") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                total = response.headers.get("Content-Length")
                total = int(total) if total else None
                done = 0
                while chunk := response.read(1 << 20):
                    tmp.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or e
            raise MlafaceError(f"download of {url} failed ({reason}); nothing installed") from None
        tmp.flush()
        return install_model(tmp.name, dest_path, expected_digest)
