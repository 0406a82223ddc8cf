"""The linear albedo (texture) model of the face tile: the network's "texture" attribute and the texture prior.

    albedo_map = mean + sum_k coeffs[k] * sigma[k] * basis[k]     (linear RGB, texels of the face tile, UDIM 1001)

coefficients are about N(0, 1) (the basis is scaled by sigma, the per-component standard deviation). The maps
are [3, S, S] images of the face tile with row 0 at v = 1 (backend.texture.uv_raster's layout), so a renderer looks
them up with backend.render.texture at the mesh's face-tile UVs.

ICT-FaceKit has no albedo model; ours is built from real faces by `python -m training.texture_model` (see there:
fits to the AFLW crops, unwrapped, de-lit, mirrored, and a PCA that handles unseen texels). File: versioned npz
(backend/io/npz_file.py), `mean` [3, S, S] float16, `basis` [K, 3, S, S] float16 unit vectors, `sigma` [K] float32,
`source` (a line saying what it was built from), `explained` [K] float32 (cumulative explained variance).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io.errors import MlafaceError
from ..io.npz_file import read_npz, write_npz
from .store import PACKAGED_WEIGHTS

FORMAT = "mlaface.albedo_model"
FORMAT_VERSION = 1
SHIPPED = PACKAGED_WEIGHTS / "albedo_model.npz"
TEXEL_NOISE = 0.05  # linear RGB: how far a photo's de-lit texel may stray from the model (the fit's ridge)


def write_albedo_model(path: str | Path, mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray,
                       explained: np.ndarray, source: str) -> Path:
    """mean: [3, S, S]; basis: [K, 3, S, S] orthonormal rows; sigma: [K]; explained: [K] cumulative fraction."""
    return write_npz(path, FORMAT, FORMAT_VERSION, {
        "mean": mean.astype(np.float16), "basis": basis.astype(np.float16), "sigma": sigma.astype(np.float32),
        "explained": explained.astype(np.float32), "source": np.array(source)})


class AlbedoModel(nn.Module):
    """Buffers: mean [3, S, S], basis [K, 3 * S * S] pre-scaled by sigma (so coefficients are about N(0, 1))."""

    def __init__(self, mean: np.ndarray, basis: np.ndarray, sigma: np.ndarray, source: str = ""):
        super().__init__()
        K = len(sigma)
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        scaled = torch.as_tensor(basis, dtype=torch.float32).reshape(K, -1) * torch.as_tensor(sigma)[:, None]
        self.register_buffer("basis", scaled)
        self.source = source

    @classmethod
    def load(cls, path: str | Path | None = None) -> AlbedoModel:
        """The model at `path`, default the one shipped in backend/weights."""
        a = read_npz(path or SHIPPED, FORMAT, FORMAT_VERSION, "albedo model", ["mean", "basis", "sigma"])
        if a["basis"].shape[1:] != a["mean"].shape or a["mean"].shape[0] != 3:
            raise MlafaceError(f"{path or SHIPPED}: albedo model arrays do not fit together")
        return cls(a["mean"].astype(np.float32), a["basis"].astype(np.float32), a["sigma"], str(a.get("source", "")))

    @property
    def n_components(self) -> int:
        return self.basis.shape[0]

    @property
    def size(self) -> int:
        return self.mean.shape[-1]

    def forward(self, coeffs: torch.Tensor) -> torch.Tensor:
        """coeffs: [B, k] with k <= K (the first k components) -> [B, 3, S, S] linear albedo."""
        k = coeffs.shape[1]
        if k > self.n_components:
            raise MlafaceError(f"{k} texture coefficients, the albedo model has {self.n_components}")
        return self.mean + (coeffs.to(self.basis.dtype) @ self.basis[:k]).view(-1, *self.mean.shape)

    def fit(self, albedo: torch.Tensor, weight: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Coefficients [k] (default all K) of the first k components that best explain a partly seen albedo map:
        albedo [3, H, W] linear (any size, resized to the model's), weight [H, W] in [0, 1] (0 = unseen); MAP
        estimate with the N(0, 1) prior and TEXEL_NOISE per texel, so with nothing seen it is the mean. The cost
        grows with k squared."""
        S = self.size
        a = F.interpolate(albedo[None].float(), size=(S, S), mode="area")[0]
        w = F.interpolate(weight[None, None].float(), size=(S, S), mode="area")[0, 0].reshape(-1).repeat(3)
        seen = torch.nonzero(w).squeeze(1)  # unseen texels add nothing: left out, the products are smaller
        basis = self.basis[:k, seen]
        bw = basis * w[seen]
        lhs = bw @ basis.T + TEXEL_NOISE ** 2 * torch.eye(len(basis), device=w.device)
        return torch.linalg.solve(lhs, bw @ (a - self.mean).reshape(-1)[seen])
