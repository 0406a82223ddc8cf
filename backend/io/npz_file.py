"""Versioned `.npz` files (no pickle), written atomically: the face model file and the FaceResult both use it.
numpy only, so the Blender add-on can read FaceResults.

The zip container is written here rather than with `zipfile` so that a read-only array written again (the face
model's 17 MB of expression deltas go into every FaceResult) reuses its compressed entry instead of deflating it
anew: zipfile has no public way to add an entry already compressed. What it writes is a plain zip (deflate, no
zip64: an entry or file of 4 GiB or more is refused) that np.load and zipfile read."""

from __future__ import annotations

import io
import os
import struct
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import MlafaceError

COMPRESS_LEVEL = 1  # deflate level: np.savez_compressed's 6 takes twice as long for 6% smaller files
_ZIP_LIMIT = 0xFFFFFFFF  # sizes and offsets above this need zip64, which this writer does not write


@dataclass(frozen=True)
class _Entry:
    """One array as a zip entry: its .npy bytes deflated (raw, COMPRESS_LEVEL), their CRC-32 and length."""
    deflated: bytes
    crc: int
    size: int


_reused: dict[str, tuple[np.ndarray, _Entry]] = {}  # entry name -> the read-only array last written under it
_reused_lock = threading.Lock()


def _entry(name: str, a: np.ndarray) -> _Entry:
    """The zip entry of array `a`; a read-only array that is the very object last written under `name` reuses
    that entry (read-only: its bytes cannot have changed since)."""
    if not a.flags.writeable:
        with _reused_lock:
            last = _reused.get(name)
        if last is not None and last[0] is a:
            return last[1]
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    raw = buf.getbuffer()
    packer = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, -15)
    entry = _Entry(packer.compress(raw) + packer.flush(), zlib.crc32(raw), raw.nbytes)
    if not a.flags.writeable:
        with _reused_lock:
            _reused[name] = (a, entry)
    return entry


def _write_zip(f, entries: dict[str, _Entry]) -> None:
    """A zip file of deflated entries (name -> _Entry) into the binary file `f`."""
    t = time.localtime()
    dos_time = t.tm_hour << 11 | t.tm_min << 5 | t.tm_sec // 2
    dos_date = max(t.tm_year - 1980, 0) << 9 | t.tm_mon << 5 | t.tm_mday
    central, offset = [], 0
    for name, e in entries.items():
        if max(e.size, len(e.deflated), offset) >= _ZIP_LIMIT:
            raise MlafaceError(f"{name}: 4 GiB or more, too large for an npz file without zip64")
        key = name.encode()
        common = struct.pack("<HHHHHIIIH", 20, 0, zipfile.ZIP_DEFLATED, dos_time, dos_date, e.crc,
                             len(e.deflated), e.size, len(key))
        f.write(struct.pack("<I", 0x04034B50) + common + struct.pack("<H", 0) + key)
        f.write(e.deflated)
        central.append(struct.pack("<IH", 0x02014B50, 20) + common +
                       struct.pack("<HHHHII", 0, 0, 0, 0, 0o600 << 16, offset) + key)
        offset += 30 + len(key) + len(e.deflated)
    directory = b"".join(central)
    f.write(directory)
    f.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), len(directory), offset, 0))


def write_npz(path: str | Path, kind: str, version: int, arrays: dict) -> Path:
    """Write arrays plus `format` = kind and `format_version` to a temporary file, then rename it into place:
    a crash or a full disk never leaves a half-written file under `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"format": np.array(kind), "format_version": np.array(version), **arrays}
    entries = {f"{name}.npy": _entry(f"{name}.npy", np.asanyarray(a)) for name, a in arrays.items()}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        _write_zip(f, entries)
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
