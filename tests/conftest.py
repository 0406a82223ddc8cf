"""Shared fixtures and helpers: the data folder beside the repo, the real face model converted once per session, a
tiny hand-made ICT-FaceKit-like OBJ set, and a `mlaface worker` subprocess driver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FACEKIT_ARCHIVE = SHARED_DATA / "ict-facekit" / "FaceXModel.tar.xz"
MLAFACE = Path(sys.executable).parent / "mlaface"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """No test reads or writes the user's real model cache or follows the user's $MLAFACE_MODEL."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.delenv("MLAFACE_MODEL", raising=False)


@pytest.fixture(scope="session")
def real_model_path(tmp_path_factory) -> Path:
    """The ICT-FaceKit model from ../shared/data converted once for the whole test session."""
    if not FACEKIT_ARCHIVE.is_file():
        pytest.skip(f"{FACEKIT_ARCHIVE} is absent (the shared data folder is not beside the repo)")
    from backend.model.store import install_model

    return install_model(FACEKIT_ARCHIVE, tmp_path_factory.mktemp("model") / "ict-facekit.npz")


@pytest.fixture(scope="session")
def real_model_data(real_model_path):
    from backend.io.model_file import read_model

    return read_model(real_model_path)


# --- a tiny hand-made model set --------------------------------------------------------------------------------
# Face: a 9x9 vertex grid (x -6..6, y -8..8, z 5 cm) of 64 polygons under M_Face, one of them split in two
# triangles; ears: a quad on each side (x +-9, y -1..1, z -1..0) under M_BackHead; irises: one quad each, in
# front of the face, under M_IrisLeft (x > 0) / M_IrisRight. UV tiles: face and irises 0, ears 1.
TINY_EXPRESSIONS = ["jawOpen", "eyeBlink_L"]
GRID = 9


def _grid_id(row: int, col: int) -> int:
    return row * GRID + col


def tiny_neutral() -> tuple[np.ndarray, list[tuple[str, list[int]]]]:
    """([V, 3] centimetres, [(material, polygon vertex ids)])."""
    verts = [(-6 + 1.5 * c, -8 + 2 * r, 5.0) for r in range(GRID) for c in range(GRID)]
    polys: list[tuple[str, list[int]]] = []
    for r in range(GRID - 1):
        for c in range(GRID - 1):
            a, b, cc, d = _grid_id(r, c), _grid_id(r, c + 1), _grid_id(r + 1, c + 1), _grid_id(r + 1, c)
            if (r, c) == (0, 0):
                polys += [("M_Face", [a, b, cc]), ("M_Face", [a, cc, d])]
            else:
                polys.append(("M_Face", [a, b, cc, d]))
    for side in (-1, 1):  # ears, wound to face outwards
        base = len(verts)
        verts += [(9.0 * side, -1, 0), (9.0 * side, -1, -1), (9.0 * side, 1, -1), (9.0 * side, 1, 0)]
        quad = [base, base + 1, base + 2, base + 3]
        polys.append(("M_BackHead", quad if side > 0 else quad[::-1]))
    for side, material in ((1, "M_IrisLeft"), (-1, "M_IrisRight")):
        base = len(verts)
        verts += [(2.5 * side - 0.5, 1.5, 6.0), (2.5 * side + 0.5, 1.5, 6.0),
                  (2.5 * side + 0.5, 2.5, 6.0), (2.5 * side - 0.3, 2.5, 6.4)]
        polys.append((material, [base, base + 1, base + 2, base + 3]))
    return np.array(verts), polys


def tiny_landmarks() -> list[int]:
    """68 vertex ids: jaw top (0, 16) on the face's side edges, mouth corners (48, 54) at y = -4."""
    ids = [i % (GRID * GRID) for i in range(68)]
    ids[0], ids[16] = _grid_id(6, 0), _grid_id(6, GRID - 1)
    ids[48], ids[54] = _grid_id(2, 2), _grid_id(2, 6)
    return ids


def write_obj(path: Path, verts: np.ndarray, polys: list[tuple[str, list[int]]]) -> None:
    """Write an OBJ as ICT-FaceKit does: v, vt (one per vertex; u + tile), usemtl groups, f v/vt."""
    tiles = {"M_BackHead": 1}
    uv = np.zeros((len(verts), 2))
    for material, ids in polys:
        uv[ids, 0] = tiles.get(material, 0) + (verts[ids, 0] + 10) / 20
        uv[ids, 1] = (verts[ids, 1] + 10) / 20
    lines = ["# tiny hand-made test mesh", "mtllib test.mtl"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    current = None
    for material, ids in polys:
        if material != current:
            lines.append(f"usemtl {material}")
            current = material
        lines.append("f " + " ".join(f"{i + 1}/{i + 1}" for i in ids))
    path.write_text("\n".join(lines) + "\n")


def make_tiny_facekit(folder: Path) -> Path:
    """Write a tiny FaceXModel folder (2 identities, 2 expressions) and return it."""
    folder.mkdir(parents=True, exist_ok=True)
    verts, polys = tiny_neutral()
    write_obj(folder / "generic_neutral_mesh.obj", verts, polys)
    rng = np.random.default_rng(0)
    for k in range(2):
        write_obj(folder / f"identity{k:03d}.obj", verts + rng.normal(0, 0.5, verts.shape), polys)
    jaw = verts.copy()
    jaw[verts[:, 1] < 0, 1] -= 2.0
    write_obj(folder / "jawOpen.obj", jaw, polys)
    blink = verts.copy()
    blink[(verts[:, 0] > 0) & (verts[:, 1] > 0), 1] -= 0.5
    write_obj(folder / "eyeBlink_L.obj", blink, polys)
    (folder / "vertex_indices.json").write_text(json.dumps({
        "expressions": TINY_EXPRESSIONS,
        "idx_to_landmark_verts": tiny_landmarks(),
        "idx_to_rigid_verts": [0, 1, 2],
    }))
    return folder


@pytest.fixture
def tiny_facekit(tmp_path) -> Path:
    return make_tiny_facekit(tmp_path / "FaceXModel")


# --- the worker subprocess ---------------------------------------------------------------------------------

class Worker:
    """A worker subprocess with a reader thread collecting its events."""

    def __init__(self, *args: str):
        self.proc = subprocess.Popen([str(MLAFACE), "worker", "--device", "cpu", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.events: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def send(self, message: dict | str) -> None:
        from backend.io.worker_protocol import encode

        self.proc.stdin.write(message if isinstance(message, str) else encode(message))
        self.proc.stdin.flush()

    def wait_for(self, predicate, timeout: float = 120.0) -> dict:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for e in list(self.events):
                if predicate(e):
                    return e
            time.sleep(0.05)
        raise AssertionError(f"no such event within {timeout} s; got {self.events}")


# --- bpy at exit ------------------------------------------------------------------------------------------------
# bpy as a Python module can hang at interpreter exit after printing its memory-leak report (seen here, about one
# run in two, with torch loaded in the same process). Once pytest has reported everything, a process that imported
# bpy ends at once with pytest's own exit status.
_EXIT_STATUS = {"code": 0}


def pytest_sessionfinish(session, exitstatus):
    _EXIT_STATUS["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "bpy" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_EXIT_STATUS["code"])
