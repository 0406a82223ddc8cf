"""The 3D morphable face model as a torch module: vertices from identity and expression coefficients.

    verts = mean + sum_k identity[k] * identity_basis[k] + sum_e expression[e] * expression_basis[e]

Units and axes are those of the model file (backend/io/model_file.py): metres, +x to the subject's left, +y up,
+z out of the face. Works in float32 or bfloat16 (`model.to(torch.bfloat16)`), on CPU or CUDA; the coefficients
are cast to the model's dtype and must be on its device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io.errors import MlafaceError
from ..io.model_file import FaceModelData, read_model

# "ibug68": the iBUG points as the benchmark's 3D convention places them (the network's, the teacher's, training's
# synthetic labels); "detector68": as a 2D detector (dlib) places them, for fitting its points; "aflw21": AFLW's
LANDMARK_SETS = ("ibug68", "detector68", "aflw21")


def _tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """A tensor of its own (a model file's arrays are read-only, which torch cannot share)."""
    return torch.tensor(a, dtype=dtype)


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


class FaceModel(nn.Module):
    """Linear face model over V vertices with K identity modes and E expression shapes.

    Buffers (move with `.to()`):
        mean: [V, 3] metres; identity_basis: [K, V*3]; expression_basis: [E, V*3]
        triangles: [T, 3] int64 vertex ids; triangle_uvs: [T, 3, 2] (u, v), UDIM tile in floor(u)
        landmarks_ibug68, landmarks_detector68: [68] int64; landmarks_aflw21: [21] int64 (LANDMARK_SETS)
    """

    def __init__(self, mean: np.ndarray, identity_basis: np.ndarray, expression_basis: np.ndarray,
                 triangles: np.ndarray, triangle_uvs: np.ndarray, landmarks: dict[str, np.ndarray],
                 expression_names: list[str], face_region: np.ndarray):
        super().__init__()
        V = mean.shape[0]
        f32, i64 = (lambda a: _tensor(a, torch.float32)), (lambda a: _tensor(a, torch.int64))
        self.register_buffer("mean", f32(mean))
        self.register_buffer("identity_basis", f32(identity_basis.reshape(len(identity_basis), V * 3)))
        self.register_buffer("expression_basis", f32(expression_basis.reshape(len(expression_basis), V * 3)))
        self.register_buffer("triangles", i64(triangles))
        self.register_buffer("triangle_uvs", f32(triangle_uvs))
        for name in LANDMARK_SETS:
            self.register_buffer(f"landmarks_{name}", i64(landmarks[name]))
        self.register_buffer("face_region", i64(face_region), persistent=False)
        self.expression_names = list(expression_names)

    @classmethod
    def from_data(cls, data: FaceModelData) -> FaceModel:
        return cls(
            mean=data.mean,
            identity_basis=data.identity_basis,
            expression_basis=data.expression_basis,
            triangles=data.triangles,
            triangle_uvs=data.corner_uv[data.triangle_corners],
            landmarks={k: getattr(data, f"landmarks_{k}") for k in LANDMARK_SETS},
            expression_names=[str(n) for n in data.expression_names],
            face_region=data.face_region,
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> FaceModel:
        """Load the face model: `path` if given, else $MLAFACE_MODEL, else the user cache."""
        from .store import resolve_model_path

        return cls.from_data(read_model(resolve_model_path(path)))

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """identity: [B, K], expression: [B, E] (shape-key weights, normally in [0, 1])
        -> [B, V, 3] vertices in model space, metres, the model's dtype."""
        B = identity.shape[0]
        if identity.shape != (B, self.n_identity) or expression.shape != (B, self.n_expression):
            raise MlafaceError(
                f"expected identity [B, {self.n_identity}] and expression [B, {self.n_expression}], "
                f"got {tuple(identity.shape)} and {tuple(expression.shape)}"
            )
        dtype = self.mean.dtype
        offsets = identity.to(dtype) @ self.identity_basis + expression.to(dtype) @ self.expression_basis
        return self.mean + offsets.view(B, self.n_vertices, 3)

    def landmarks(self, verts: torch.Tensor, kind: str = "ibug68") -> torch.Tensor:
        """verts: [B, V, 3] -> [B, L, 3] landmark positions (L = 68 for "ibug68" and "detector68", 21 for "aflw21")."""
        if kind not in LANDMARK_SETS:
            raise MlafaceError(f"unknown landmark set {kind!r}; choose from {', '.join(LANDMARK_SETS)}")
        return verts[:, getattr(self, f"landmarks_{kind}")]

    def face_triangles(self) -> torch.Tensor:
        """[T', 3] the triangles with all corners in the front-face region (the skin the photo shows)."""
        inside = torch.zeros(self.n_vertices, dtype=torch.bool, device=self.triangles.device)
        inside[self.face_region] = True
        return self.triangles[inside[self.triangles].all(dim=1)]

    def face_subset(self) -> FaceModel:
        """The model restricted to the front face (~9.4k vertices, for training) plus the landmark vertices
        outside it (ears, pupils)."""
        return self.subset(torch.cat([self.face_region, *self.landmark_vertices()]))

    def landmark_subset(self) -> FaceModel:
        """The model restricted to the landmark vertices of every set (at most 157, no triangles): all a landmark fit's
        inner loop computes."""
        return self.subset(torch.cat(self.landmark_vertices()))

    def landmark_vertices(self) -> list[torch.Tensor]:
        """The vertex ids of every landmark set (LANDMARK_SETS order)."""
        return [getattr(self, f"landmarks_{k}") for k in LANDMARK_SETS]

    def subset(self, vertex_ids: torch.Tensor) -> FaceModel:
        """The model restricted to vertex_ids (any order, repeats allowed) and the triangles with all corners
        among them, indices remapped; the landmark sets must be among them."""
        keep = torch.unique(vertex_ids).cpu()
        new_id = torch.full((self.n_vertices,), -1, dtype=torch.int64)
        new_id[keep] = torch.arange(len(keep))
        tri = new_id[self.triangles.cpu()]
        inside = (tri >= 0).all(dim=1)
        V = self.n_vertices
        sub = FaceModel(
            mean=_numpy(self.mean[keep]),
            identity_basis=_numpy(self.identity_basis.view(-1, V, 3)[:, keep]),
            expression_basis=_numpy(self.expression_basis.view(-1, V, 3)[:, keep]),
            triangles=tri[inside].numpy(),
            triangle_uvs=_numpy(self.triangle_uvs[inside]),
            landmarks={k: new_id[getattr(self, f"landmarks_{k}").cpu()].numpy() for k in LANDMARK_SETS},
            expression_names=self.expression_names,
            face_region=(region := new_id[self.face_region.cpu()])[region >= 0].numpy(),
        )
        return sub.to(device=self.mean.device, dtype=self.mean.dtype)
