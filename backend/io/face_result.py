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
    polygon_material: [F] int32; material_names: [M] str; material_roles: [M] str (io/parts.py);
    material_parts: [M] str (the roles' parts)
    expression_names: [E] str (ARKit style); expression_deltas: [E, V, 3] float32, metres at weight 1
    expression_weights: [E] float32 in [0, 1], the expression seen in the photo
    rotation: [3, 3] float32; translation: [3] float32 metres; focal: float32 pixels; image_size: [2] int32 (H, W)
    texture: [T, T, 3] uint8 sRGB, the albedo of the face skin (material role "face", UDIM tile texture_tile)
    texture_tile: int32
    landmarks: [68, 2] float32 photo pixels (0-based centres) as detected; fitted_landmarks: [68, 2] as fitted
    identity: [K] float32 coefficients; sh: [27] float32 light
    photo: str, the photo's path; face_index: int32 (0 = largest face)
    metadata: str, JSON (mlaface version, landmark provider, network weights, fitting losses, timings)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from .colour import srgb_to_linear
from .errors import MlafaceError
from .npz_file import read_record, write_record
from .parts import ROLES, ict_roles, roles_problem

FORMAT = "mlaface.face_result"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FaceResult:
    """One reconstructed face (shapes in this module's docstring)."""

    vertices: np.ndarray
    polygon_sizes: np.ndarray
    corner_vertex: np.ndarray
    corner_uv: np.ndarray
    polygon_material: np.ndarray
    material_names: np.ndarray
    material_roles: np.ndarray
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

    @cached_property
    def texture_png(self) -> bytes:
        """The texture as a PNG file's bytes, encoded once for every writer (OBJ's file, glTF's embedded image)."""
        from .images import png_bytes  # Pillow: wanted where files are written, not by the add-on's reading

        return png_bytes(self.texture)

    def expressed_vertices(self, weights: np.ndarray | None = None) -> np.ndarray:
        """[V, 3] the face with an expression (default: the photo's), model space."""
        w = self.expression_weights if weights is None else weights
        return self.vertices + np.tensordot(w, self.expression_deltas, axes=1)

    def role(self, material: int):
        """The material's io.parts.Role."""
        return ROLES[str(self.material_roles[material])]

    def exported_polygons(self) -> np.ndarray:
        """[F] bool: polygons whose material is written to OBJ, glTF and Blender (Role.exported)."""
        keep = np.array([self.role(m).exported for m in range(len(self.material_roles))])
        return keep[self.polygon_material]

    def is_textured(self, material: int) -> bool:
        """Whether the face texture covers this material: the face skin in the texture's UDIM tile."""
        uv = self.corner_uv[np.repeat(self.polygon_material == material, self.polygon_sizes)]
        return (str(self.material_roles[material]) == "face" and len(uv) > 0
                and int(np.floor(uv[:, 0].min())) == self.texture_tile)

    def colour(self, material: int) -> tuple[float, float, float]:
        """Linear RGB for an untextured material: skin outside the texture the texture's median skin tone, the
        other roles their colour in io.parts.ROLES."""
        role = self.role(material)
        return skin_tone(self.texture) if role.part == "skin" else role.colour

    def opacity(self, material: int) -> float:
        """1 for solid materials, less for the see-through ones (io.parts.ROLES: the lash cards are faint)."""
        return self.role(material).opacity

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
        if problem := roles_problem(self.material_roles, self.material_names):
            problems.append(problem)
        if self.texture.ndim != 3 or self.texture.shape[2] != 3 or self.texture.dtype != np.uint8:
            problems.append("texture must be [T, T, 3] uint8")
        if problems:
            raise MlafaceError(f"{where}: invalid face result: " + "; ".join(problems))


def skin_tone_window(t: int) -> tuple[slice, slice]:
    """The rows and columns of a T x T face texture that skin_tone reads: its centre (cheeks, nose and mouth)."""
    return slice(t // 3, 2 * t // 3), slice(t // 4, 3 * t // 4)


def skin_tone(texture: np.ndarray) -> tuple[float, float, float]:
    """The linear-RGB skin tone of a face texture [T, T, 3] uint8 sRGB: the median of its skin_tone_window, the
    colour of the skin the texture does not cover (the texture's border fades to it, texture.py)."""
    rows, cols = skin_tone_window(texture.shape[0])
    return median_tone(texture[rows, cols])


def median_tone(pixels: np.ndarray) -> tuple[float, float, float]:
    """[..., 3] uint8 sRGB -> their per-channel median, linear RGB."""
    return tuple(float(c) for c in srgb_to_linear(np.median(pixels.reshape(-1, 3), axis=0) / 255))


_SCALARS = {"focal": float, "texture_tile": int, "photo": str, "face_index": int, "metadata": str}


def write_result(path: str | Path, result: FaceResult) -> Path:
    """Write atomically (a temporary file renamed into place): never a half-written result."""
    return write_record(path, FORMAT, FORMAT_VERSION, result)


def read_result(path: str | Path) -> FaceResult:
    """Read and check a FaceResult file; every problem is an MlafaceError naming the file."""
    return read_record(path, FORMAT, FORMAT_VERSION, "face result", FaceResult, _SCALARS,
                       {"material_roles": lambda a: np.array(ict_roles(a["material_names"]))})
