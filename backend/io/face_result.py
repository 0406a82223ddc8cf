"""FaceResult: everything Blender (or another tool) needs to build one reconstructed head, in one versioned `.npz`
(no pickle). numpy only: the Blender add-on reads it without torch.

Frames (backend/io/model_file.py and camera.py): the head in model space (metres; +x subject's left, +y up, +z out of
the face); `rotation` and `translation` place it in camera space (camera at the origin looking down -z, +y up):
    camera_point = rotation @ model_point + translation
and the camera with `focal` (pixels) over an image of `image_size` (H, W) sees it as the photo does.

Arrays (V vertices, F polygons, C corners, E expressions, M materials, T texture side):
    format: str, FORMAT; format_version: int, FORMAT_VERSION
    vertices: [V, 3] float32, the person's neutral face (identity, no expression), metres, model space
    polygon_sizes: [F] int32; corner_vertex: [C] int32; corner_uv: [C, 2] float32 (UDIM tile in floor(u))
    polygon_material: [F] int32; material_names: [M] str; material_parts: [M] str (model_file.PARTS)
    expression_names: [E] str (ARKit style); expression_deltas: [E, V, 3] float32, metres at weight 1
    expression_weights: [E] float32 in [0, 1], the expression seen in the photo
    rotation: [3, 3] float32; translation: [3] float32 metres; focal: float32 pixels; image_size: [2] int32 (H, W)
    texture: [T, T, 3] uint8 sRGB, the albedo of the face skin (material part "skin", UDIM tile texture_tile)
    texture_tile: int32
    landmarks: [68, 2] float32 photo pixels (0-based centres) as detected; fitted_landmarks: [68, 2] as fitted
    identity: [K] float32 coefficients; sh: [27] float32 light
    photo: str, the photo's path; face_index: int32 (0 = largest face)
    metadata: str, JSON (mlaface version, landmark provider, network weights, fitting losses, timings)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MlafaceError
from .npz_file import read_record, write_record

FORMAT = "mlaface.face_result"
FORMAT_VERSION = 1
PART_COLOURS = {"skin": (0.8, 0.62, 0.52), "mouth": (0.55, 0.2, 0.22), "teeth": (0.92, 0.9, 0.84),
                "eye": (0.7, 0.68, 0.65), "eyelashes": (0.05, 0.04, 0.04), "other": (0.5, 0.5, 0.5)}
PART_OPACITY = {"eyelashes": 0.15}
IRIS_COLOUR, PUPIL_COLOUR = (0.2, 0.12, 0.06), (0.01, 0.01, 0.01)


@dataclass(frozen=True)
class FaceResult:
    """One reconstructed face (shapes in this module's docstring)."""

    vertices: np.ndarray
    polygon_sizes: np.ndarray
    corner_vertex: np.ndarray
    corner_uv: np.ndarray
    polygon_material: np.ndarray
    material_names: np.ndarray
    material_parts: np.ndarray
    expression_names: np.ndarray
    expression_deltas: np.ndarray
    expression_weights: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    image_size: np.ndarray
    texture: np.ndarray
    texture_tile: int
    landmarks: np.ndarray
    fitted_landmarks: np.ndarray
    identity: np.ndarray
    sh: np.ndarray
    photo: str
    face_index: int
    metadata: str

    @property
    def meta(self) -> dict:
        return json.loads(self.metadata)

    def expressed_vertices(self, weights: np.ndarray | None = None) -> np.ndarray:
        """[V, 3] the face with an expression (default: the photo's), model space."""
        w = self.expression_weights if weights is None else weights
        return self.vertices + np.tensordot(w, self.expression_deltas, axes=1)

    def is_textured(self, material: int) -> bool:
        """Whether the face texture covers this material: skin in the texture's UDIM tile."""
        uv = self.corner_uv[np.repeat(self.polygon_material == material, self.polygon_sizes)]
        return (str(self.material_parts[material]) == "skin" and len(uv) > 0
                and int(np.floor(uv[:, 0].min())) == self.texture_tile)

    def colour(self, material: int) -> tuple[float, float, float]:
        """Linear RGB for an untextured material: irises brown, pupils black, skin outside the texture the
        texture's median skin tone, other parts a fixed colour of their kind."""
        name, part = str(self.material_names[material]), str(self.material_parts[material])
        if "Iris" in name:
            return IRIS_COLOUR
        if "Pupil" in name:
            return PUPIL_COLOUR
        if part != "skin":
            return PART_COLOURS.get(part, PART_COLOURS["other"])
        t = self.texture.shape[0]
        srgb = np.median(self.texture[t // 3: 2 * t // 3, t // 4: 3 * t // 4].reshape(-1, 3), axis=0) / 255
        return tuple(float(c) for c in np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4))

    def opacity(self, material: int) -> float:
        """1 for solid materials; PART_OPACITY of the see-through ones: ICT's lash cards, untextured, are a dark band
        around the eye when solid; faint, they keep the lashes' place for an artist's lash texture."""
        return PART_OPACITY.get(str(self.material_parts[material]), 1.0)

    def check(self, where: str = "face result") -> None:
        V, E = len(self.vertices), len(self.expression_names)
        problems = []
        if self.vertices.shape != (V, 3) or self.expression_deltas.shape != (E, V, 3):
            problems.append("vertex and expression arrays disagree")
        if self.expression_weights.shape != (E,):
            problems.append("expression weights do not match the expression names")
        if int(self.polygon_sizes.sum()) != len(self.corner_vertex) or len(self.corner_uv) != len(self.corner_vertex):
            problems.append("polygon corners do not add up")
        if len(self.corner_vertex) and (self.corner_vertex.min() < 0 or self.corner_vertex.max() >= V):
            problems.append("polygons refer to missing vertices")
        if self.rotation.shape != (3, 3) or self.translation.shape != (3,) or self.image_size.shape != (2,):
            problems.append("pose or camera has the wrong shape")
        if self.texture.ndim != 3 or self.texture.shape[2] != 3 or self.texture.dtype != np.uint8:
            problems.append("texture must be [T, T, 3] uint8")
        if problems:
            raise MlafaceError(f"{where}: invalid face result: " + "; ".join(problems))


_SCALARS = {"focal": float, "texture_tile": int, "photo": str, "face_index": int, "metadata": str}


def write_result(path: str | Path, result: FaceResult) -> Path:
    """Write atomically (a temporary file renamed into place): never a half-written result."""
    return write_record(path, FORMAT, FORMAT_VERSION, result)


def read_result(path: str | Path) -> FaceResult:
    """Read and check a FaceResult file; every problem is an MlafaceError naming the file."""
    return read_record(path, FORMAT, FORMAT_VERSION, "face result", FaceResult, _SCALARS)
