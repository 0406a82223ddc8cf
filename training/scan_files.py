"""Scan benchmarks on disk: meshes (.obj, VRML .wrl), scan landmarks (MeshLab .pp, text, .npy, JSON) and the
datasets' layouts, read into cases of (subject, photos, scan, landmarks). numpy only.

Layouts (`find_cases`):
- NoW (Sanyal et al. 2019): `imagepathsvalidation.txt` (or any `imagepaths*.txt`) listing `SUBJECT/CONDITION/
  IMAGE.jpg`, the images under `NoW_Dataset/final_release_version/iphone_pictures/` (or beside the list), scans
  `scans/SUBJECT/*.obj` and their 7 landmarks `scans_lmks_onlypp/SUBJECT/*.pp`. One case per image.
- MICC Florence (Bagdanov et al. 2011): a folder per subject (`subject_NN`), the frontal scan (`*frontal1*` first,
  then any `*frontal*`, then any scan; `.obj` before `.wrl`), and the subject's photos or video frames outside
  the scan's folders (video files: every FRAME_STEP-th frame, at most MAX_FRAMES). One case per subject, its
  photos reconstructed as one person; no scan landmarks (the crop is about the nose tip).
- A manifest: `manifest.json` = {"units": "mm" | "m", "cases": [{"subject": str, "photos": [paths],
  "scan": path, "landmarks": path or [[x, y, z] x 7] (optional)}]}, paths relative to the manifest.

Units: the protocols report millimetres. A scan's unit is the manifest's, else read from its size: a face
whose extent is under 1 unit is in metres.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from backend.io.errors import MlafaceError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mjpg", ".mjpeg", ".avi", ".mp4", ".mov", ".mkv")
SCAN_SUFFIXES = (".obj", ".wrl")
FRAME_STEP, MAX_FRAMES = 25, 8  # MICC's videos: a frame a second at 25 fps, 8 at most


@dataclass(frozen=True)
class Scan:
    """vertices [V, 3] float64 mm; triangles [T, 3] int64; landmarks [7, 3] mm (NoW's order) or None."""

    vertices: np.ndarray
    triangles: np.ndarray
    landmarks: np.ndarray | None
    path: str


@dataclass(frozen=True)
class ScanCase:
    subject: str
    photos: tuple[Path, ...]  # images, or one video whose frames are the photos
    scan: Path
    landmarks: Path | tuple | None = None  # a file, 7 points, or none
    units: str | None = None  # "mm", "m", or None: from the scan's size
    name: str = ""  # the case's name in reports (the image for NoW, the subject otherwise)


def read_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """An .obj or VRML .wrl mesh -> (vertices [V, 3] float64, triangles [T, 3] int64; polygons fanned).
    MlafaceError naming the file for an unknown format, an empty mesh, bad indices or non-finite vertices."""
    path = Path(path)
    if not path.is_file():
        raise MlafaceError(f"{path}: scan not found")
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".obj":
        vertices, polygons = _obj(text)
    elif path.suffix.lower() == ".wrl":
        vertices, polygons = _wrl(text, path)
    else:
        raise MlafaceError(f"{path}: not a scan mesh (.obj or .wrl)")
    if not len(vertices) or not polygons:
        raise MlafaceError(f"{path}: empty mesh ({len(vertices)} vertices, {len(polygons)} faces)")
    if not np.isfinite(vertices).all():
        raise MlafaceError(f"{path}: {int((~np.isfinite(vertices)).any(1).sum())} vertices are not finite (NaN)")
    tris = np.array([(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)], np.int64)
    if tris.size == 0 or tris.min() < 0 or tris.max() >= len(vertices):
        raise MlafaceError(f"{path}: faces index vertices that do not exist (the mesh has {len(vertices)})")
    return vertices, tris


def _obj(text: str) -> tuple[np.ndarray, list[list[int]]]:
    vertices, polygons = [], []
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            vertices.append([float(x) for x in parts[1:4]])
        elif parts[0] == "f":
            ids = [int(p.split("/")[0]) for p in parts[1:]]
            polygons.append([i - 1 if i > 0 else len(vertices) + i for i in ids])
    return np.array(vertices, np.float64).reshape(-1, 3), polygons


def _wrl(text: str, path: Path) -> tuple[np.ndarray, list[list[int]]]:
    """VRML 2.0 IndexedFaceSets: every `point [...]` with the `coordIndex [...]` after it, appended."""
    vertices, polygons = [], []
    for points, index in re.findall(r"point\s*\[([^\]]*)\].*?coordIndex\s*\[([^\]]*)\]", text, re.S):
        base = len(vertices)
        values = np.array(points.replace(",", " ").split(), np.float64)
        if values.size % 3:
            raise MlafaceError(f"{path}: a point list does not hold x, y, z triples")
        vertices.extend(values.reshape(-1, 3).tolist())
        face: list[int] = []
        for i in (int(v) for v in index.replace(",", " ").split()):
            if i < 0:
                if len(face) >= 3:
                    polygons.append(face)
                face = []
            else:
                face.append(base + i)
        if len(face) >= 3:
            polygons.append(face)
    return np.array(vertices, np.float64).reshape(-1, 3), polygons


def read_landmarks(source, where: str) -> np.ndarray:
    """7 scan landmarks [7, 3] from a MeshLab .pp, a text file of rows x y z, an .npy, a .json list, or a list of
    points. MlafaceError naming where for a missing file or not 7 finite points."""
    if isinstance(source, (list, tuple)):
        points = np.array(source, np.float64)
    else:
        path = Path(source)
        if not path.is_file():
            raise MlafaceError(f"{path}: scan landmarks not found")
        try:
            if path.suffix.lower() == ".pp":
                points = np.array([[float(p.get(k)) for k in "xyz"] for p in ET.parse(path).getroot().iter("point")
                                   if p.get("active", "1") != "0"], np.float64)
            elif path.suffix.lower() == ".npy":
                points = np.load(path).astype(np.float64)
            elif path.suffix.lower() == ".json":
                points = np.array(json.loads(path.read_text()), np.float64)
            else:
                points = np.loadtxt(path, dtype=np.float64, ndmin=2)
        except (ValueError, TypeError, ET.ParseError, json.JSONDecodeError) as e:
            raise MlafaceError(f"{path}: not readable scan landmarks ({e})") from None
        where = str(path)
    if points.shape != (7, 3) or not np.isfinite(points).all():
        raise MlafaceError(f"{where}: needs the 7 landmarks of NoW's protocol as finite x, y, z; got an array of "
                           f"shape {points.shape}")
    return points


def load_scan(case: ScanCase) -> Scan:
    """The case's scan and landmarks in millimetres."""
    vertices, tris = read_mesh(case.scan)
    landmarks = None if case.landmarks is None else read_landmarks(case.landmarks, f"{case.scan} (landmarks)")
    units = case.units or ("m" if np.ptp(vertices, 0).max() < 1.0 else "mm")
    if units not in ("mm", "m"):
        raise MlafaceError(f"{case.scan}: units must be mm or m, got {units!r}")
    k = 1000.0 if units == "m" else 1.0
    return Scan(vertices * k, tris, None if landmarks is None else landmarks * k, str(case.scan))


def now_cases(root: Path) -> list[ScanCase]:
    lists = sorted(root.glob("imagepaths*.txt"))
    if not lists:
        raise MlafaceError(f"{root}: no NoW image list (imagepathsvalidation.txt)")
    image_roots = [*root.glob("**/iphone_pictures"), root]
    cases = []
    for line in (ln.strip() for ln in lists[0].read_text().splitlines() if ln.strip()):
        subject = Path(line).parts[0]
        photo = next((r / line for r in image_roots if (r / line).is_file()), None)
        if photo is None:
            raise MlafaceError(f"{lists[0]}: image {line} not found under {root}")
        scans = sorted((root / "scans" / subject).glob("*.obj"))
        marks = sorted((root / "scans_lmks_onlypp" / subject).glob("*.pp"))
        if not scans or not marks:
            raise MlafaceError(f"{root}: subject {subject} needs scans/{subject}/*.obj and "
                               f"scans_lmks_onlypp/{subject}/*.pp")
        cases.append(ScanCase(subject, (photo,), scans[0], marks[0], name=line))
    return cases


def micc_cases(root: Path) -> list[ScanCase]:
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        scans = sorted((p for p in folder.rglob("*") if p.suffix.lower() in SCAN_SUFFIXES),
                       key=lambda p: ("frontal1" not in str(p).lower(), "frontal" not in str(p).lower(),
                                      p.suffix.lower() != ".obj", str(p)))
        if not scans:
            continue
        scan_dirs = {p.parent for p in scans}
        media = sorted(p for p in folder.rglob("*") if p.is_file() and p.parent not in scan_dirs
                       and not any(d in p.parents for d in scan_dirs))
        photos = [p for p in media if p.suffix.lower() in IMAGE_SUFFIXES]
        videos = [p for p in media if p.suffix.lower() in VIDEO_SUFFIXES]
        if not photos and not videos:
            raise MlafaceError(f"{folder}: a scan but no photos or video beside it")
        cases.append(ScanCase(folder.name, tuple(photos or videos[:1]), scans[0], name=folder.name))
    if not cases:
        raise MlafaceError(f"{root}: no subject folder holds a scan (.obj or .wrl)")
    return cases


def manifest_cases(path: Path) -> list[ScanCase]:
    try:
        doc = json.loads(path.read_text())
        units = doc.get("units")
        cases = []
        for i, c in enumerate(doc["cases"]):
            marks = c.get("landmarks")
            cases.append(ScanCase(str(c.get("subject", i)), tuple(path.parent / p for p in c["photos"]),
                                  path.parent / c["scan"],
                                  tuple(map(tuple, marks)) if isinstance(marks, list) else
                                  (path.parent / marks if marks else None), units, str(c.get("name", c["scan"]))))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise MlafaceError(f"{path}: not a scan manifest ({e.__class__.__name__}: {e})") from None
    if not cases:
        raise MlafaceError(f"{path}: the manifest lists no cases")
    return cases


def find_cases(root: str | Path, layout: str = "auto") -> list[ScanCase]:
    """The cases of a benchmark folder (or manifest file) in the given layout: auto, now, micc or manifest."""
    root = Path(root)
    if not root.exists():
        raise MlafaceError(f"{root}: not found")
    if layout == "auto":
        layout = ("manifest" if root.is_file() or (root / "manifest.json").is_file() else
                  "now" if any(root.glob("imagepaths*.txt")) else "micc")
    if layout == "manifest":
        return manifest_cases(root if root.is_file() else root / "manifest.json")
    if layout == "now":
        return now_cases(root)
    if layout == "micc":
        return micc_cases(root)
    raise MlafaceError(f"--layout must be auto, now, micc or manifest, got {layout!r}")
