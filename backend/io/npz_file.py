"""Versioned `.npz` files (no pickle), written atomically: the face model file and the FaceResult both use it.
numpy only, so the Blender add-on can read FaceResults."""

from __future__ import annotations

import os
import zipfile
from dataclasses import fields
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import MlafaceError

COMPRESS_LEVEL = 1


def write_npz(path: str | Path, kind: str, version: int, arrays: dict) -> Path:
    """Write arrays plus `format` = kind and `format_version` to a temporary file, then rename it into place:
    a crash or a full disk never leaves a half-written file under `path`. Deflate at COMPRESS_LEVEL (what
    np.load reads; np.savez_compressed's level 6 takes twice as long for 6% smaller files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"format": np.array(kind), "format_version": np.array(version), **arrays}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        with zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL) as zf:
            for name, a in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    np.lib.format.write_array(entry, np.asanyarray(a), allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return path


def read_npz(path: str | Path, kind: str, version: int, what: str, required: list[str], hint: str = "") -> dict:
    """The arrays of a file written by write_npz with this kind and version; MlafaceError naming the file and
    `what` it should be when it is missing, unreadable, of another kind or version, or lacks a required array."""
    path = Path(path)
    if not path.is_file():
        raise MlafaceError(f"{path}: {what} not found")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise MlafaceError(f"{path}: not a readable {what} ({e})") from None
    if str(arrays.get("format", "")) != kind:
        raise MlafaceError(f"{path}: not an mlaface {what}")
    found = int(arrays["format_version"])
    if found != version:
        raise MlafaceError(f"{path}: {what} format version {found}, this mlaface reads version {version}{hint}")
    missing = [name for name in required if name not in arrays]
    if missing:
        raise MlafaceError(f"{path}: {what} lacks {', '.join(missing)}")
    return arrays


def write_record(path: str | Path, kind: str, version: int, record) -> Path:
    """A checked dataclass record (FaceResult, AnimationTrack: each field an array or a scalar, and a
    check(where) method) written with write_npz."""
    record.check(str(path))
    return write_npz(path, kind, version, {f.name: np.asarray(getattr(record, f.name)) for f in fields(record)})


def read_record(path: str | Path, kind: str, version: int, what: str, cls, scalars: dict, added: dict | None = None):
    """The record of `cls` that write_record wrote, its scalar fields converted with `scalars` (name -> type),
    checked with cls.check. `added`: fields that files of this version written before them lack, name -> a
    function of the file's arrays that makes the field."""
    added = added or {}
    arrays = read_npz(path, kind, version, what, [f.name for f in fields(cls) if f.name not in added])
    for name, make in added.items():
        if name not in arrays:
            arrays[name] = make(arrays)
    values = {f.name: arrays[f.name] for f in fields(cls)}
    for name, convert in scalars.items():
        values[name] = convert(values[name])
    record = cls(**values)
    record.check(str(path))
    return record
