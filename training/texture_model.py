"""Build the albedo model (backend/model/albedo_model.py) from real faces: the AFLW crops.

    python -m training.texture_model ../shared/data/aflw-crops -o backend/weights/albedo_model.npz \
        [--count 2000] [--cache unwrapped.npz]

1. Fit the face model to each crop's visible AFLW points (backend.reconstruct.fitting, landmark set "aflw21"; the SH
   light solved afterwards against the skin, solve_light); drop fits that stay far off.
2. Unwrap each crop into the face tile (backend.reconstruct.texture.unwrap): z-buffer visibility, grazing-angle
   fading, SH shading divided out (de-lighting), and only what is skin (backend.reconstruct.skin, judged against
   the albedo model given by --prior, default the shipped one): no hair, glasses, clothes or background, so the
   model fills a photo's hidden parts with skin. Each face also enters mirrored (the tile is mirror-symmetric,
   u <-> 1 - u) with its own weights, so the model is symmetric and a profile still teaches both halves.
3. Weighted PCA that handles unseen texels (EM-PCA, Roweis 1998): fill unseen texels with the current model's
   reconstruction, blended by the visibility weight, and repeat SVD + fill until it settles.
4. Choose K by prediction, the way the model is used (filling what a photo does not show): on held-out faces,
   hide random 16 x 16-texel blocks (30% of their seen texels), fit the coefficients to the rest, and measure the
   error on the hidden blocks for each K. The error drops fast, then flattens (measured on 1,994 faces: 0.150 at
   K=5, 0.116 at 60, 0.111 at 200); K is the smallest whose error is within K_TOLERANCE of the best: past it,
   more components buy almost nothing and cost a larger network head. (Hiding single texels instead would
   reward any K: neighbours predict a texel.)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from backend.detect.align import landmark_box
from backend.io.errors import MlafaceError
from backend.io.model_file import read_model
from backend.model.albedo_model import SHIPPED, AlbedoModel, write_albedo_model
from backend.model.face_model import FaceModel
from backend.model.store import resolve_model_path
from backend.reconstruct.fill import push_pull
from backend.reconstruct.fitting import FitConfig, fit
from backend.reconstruct.skin import skin_weight
from backend.reconstruct.texture import TileMesh, unwrap

from .aflw_crops import load_crops

MAX_FIT_ERROR = 0.08  # mean landmark error / box size above which a fit is not trusted
CANDIDATE_K = (5, 10, 20, 30, 40, 60, 80, 120, 160, 200)
K_TOLERANCE = 0.05  # relative


def unwrap_crops(images: np.ndarray, pts21: np.ndarray, size: int, batch: int = 64, model_path=None,
                 log=print) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit and unwrap every crop. images: [N, h, w, 3] uint8; pts21: [N, 21, 2] (NaN = hidden)
    -> albedo [M, 3, size, size] float32 linear, weight [M, size, size] float32 (visibility), covered
    [size, size] bool for the M <= N crops whose fit is trusted."""
    data = read_model(resolve_model_path(model_path))
    model, mesh = FaceModel.from_data(data), TileMesh.from_data(data)
    face = model.face_subset()  # fitting sees only the face: 3x fewer vertices than the head
    cfg = FitConfig(window=64, landmark_set="aflw21")
    albedos, weights, covered = [], [], None
    start = time.perf_counter()
    for i in range(0, len(images), batch):
        imgs, pts = list(images[i:i + batch]), list(pts21[i:i + batch])
        r = fit(face, imgs, pts, cfg)
        cam = r.params.camera_vertices(model)
        for b in range(len(imgs)):
            if float(r.error_end[b]) > MAX_FIT_ERROR:
                continue
            box = landmark_box(pts[b][np.isfinite(pts[b]).all(1)])
            with torch.no_grad():
                a, w, covered = unwrap(imgs[b], cam[b], mesh, float(r.params.focal[b]), r.params.sh[b], box, size)
            albedos.append(a.permute(2, 0, 1).numpy())
            weights.append(w.numpy())
        log(f"fitted and unwrapped {min(i + batch, len(images))}/{len(images)} crops, kept {len(albedos)} "
            f"({time.perf_counter() - start:.0f} s)")
    return np.stack(albedos), np.stack(weights), covered.numpy()


def em_pca(x: torch.Tensor, w: torch.Tensor, k: int, iterations: int = 15) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """Weighted PCA with missing values. x: [N, D] data; w: [N, D] weights in [0, 1] (0 = unseen)
    -> mean [D], basis [k, D] orthonormal rows, sigma [k] (standard deviation along each)."""
    mean = (w * x).sum(0) / w.sum(0).clamp(min=1e-6)
    filled = w * x + (1 - w) * mean
    for _ in range(iterations):
        mean = filled.mean(0)
        u, s, v = torch.svd_lowrank(filled - mean, q=k + 10, niter=3)
        recon = mean + (u[:, :k] * s[:k]) @ v[:, :k].T
        filled = w * x + (1 - w) * recon
    mean = filled.mean(0)
    u, s, v = torch.svd_lowrank(filled - mean, q=k + 10, niter=4)
    return mean, v[:, :k].T.contiguous(), s[:k] / np.sqrt(len(x) - 1)


def block_mask(n: int, covered: np.ndarray, block: int = 16, share: float = 0.3, seed: int = 0) -> torch.Tensor:
    """[n, 3 * texels] bool: random block x block squares of the tile (about `share` of them) per face, in the
    layout of the PCA's rows (channel-major over the covered texels)."""
    size = covered.shape[0]
    g = np.random.default_rng(seed)
    cells = g.random((n, size // block, size // block)) < share
    full = np.repeat(np.repeat(cells, block, 1), block, 2)[:, :size, :size]
    texels = full.reshape(n, -1)[:, covered.reshape(-1)]
    return torch.from_numpy(np.tile(texels, (1, 3)))


def heldout_errors(x: torch.Tensor, w: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, sigma: torch.Tensor,
                   ks, hidden: torch.Tensor) -> dict[int, float]:
    """Mean absolute error on the hidden seen texels of held-out faces when the first k components are fitted
    (ridge: an N(0, 1) prior on the coefficients) to their other seen texels.
    x, w: [N, D]; hidden: [N, D] bool (block_mask) -> {k: error}."""
    hidden = hidden & (w > 0.5)
    fit_w = w * ~hidden
    out = {}
    for k in ks:
        b = basis[:k] * sigma[:k, None]  # [k, D]
        errs = []
        for i in range(len(x)):
            a = b * fit_w[i]
            coeffs = torch.linalg.solve(a @ b.T + 1e-3 * torch.eye(k) * fit_w[i].sum() / x.shape[1],
                                        a @ (x[i] - mean))
            pred = mean + coeffs @ b
            errs.append((pred - x[i]).abs()[hidden[i]].mean())
        out[k] = float(torch.stack(errs).mean())
    return out


def build(crops_dir: Path, output: Path, count: int, size: int, seed: int, prior: AlbedoModel | None,
          model_path=None, cache: Path | None = None, log=print) -> dict:
    """Steps 1-4; `cache` keeps the unwrapped faces of steps 1-2 (the slow part) for reruns with the same
    count, size and seed."""
    if cache is not None and cache.is_file():
        with np.load(cache) as c:
            albedo, weight, covered = c["albedo"], c["weight"], c["covered"]
        log(f"{cache}: {len(albedo)} unwrapped faces")
    else:
        names, images, pts21, _ = load_crops(crops_dir)
        order = np.random.default_rng(seed).permutation(len(names))[:count]
        albedo, weight, covered = unwrap_crops(images[order], pts21[order], size, model_path=model_path, log=log)
        if cache is not None:
            np.savez(cache, albedo=albedo, weight=weight, covered=covered)
    regions = TileMesh.from_data(read_model(resolve_model_path(model_path))).regions(size)
    seen_total = weight.sum()
    weight = np.stack([(torch.from_numpy(w) * skin_weight(torch.from_numpy(a).permute(1, 2, 0), torch.from_numpy(w),
                                                           regions, prior)).numpy()
                       for a, w in zip(albedo, weight, strict=True)])
    log(f"skin test against {'the prior albedo model' if prior else 'each crop median colour'}: "
        f"{weight.sum() / seen_total:.0%} of the seen texels' weight kept")
    # mirror: the face tile is symmetric in u, so flipping columns is the face's mirror image
    albedo = np.concatenate([albedo, albedo[..., ::-1]])
    weight = np.concatenate([weight, weight[..., ::-1]])
    covered = covered | covered[:, ::-1]
    M = len(albedo) // 2
    rng = np.random.default_rng(seed + 1)
    held = rng.permutation(M)[: max(1, M // 10)]
    train_faces = np.setdiff1d(np.arange(M), held)
    train_rows, held_rows = np.r_[train_faces, train_faces + M], held

    texels = covered.reshape(-1)
    x = torch.from_numpy(albedo.reshape(len(albedo), 3, -1)[:, :, texels].reshape(len(albedo), -1))
    w = torch.from_numpy(np.repeat(weight.reshape(len(weight), 1, -1)[:, :, texels], 3, 1).reshape(len(weight), -1))
    k_max = max(CANDIDATE_K)
    mean, basis, sigma = em_pca(x[train_rows], w[train_rows], k_max)
    errors = heldout_errors(x[held_rows], w[held_rows], mean, basis, sigma, CANDIDATE_K,
                            block_mask(len(held_rows), covered, seed=seed))
    best = min(errors.values())
    k = min(kk for kk, e in errors.items() if e <= best * (1 + K_TOLERANCE))
    log("held-out error on hidden texels by K: " + ", ".join(f"{kk}: {e:.4f}" for kk, e in errors.items()))
    log(f"chosen K = {k}")

    mean, basis, sigma = em_pca(x, w, k)  # the final model uses every face
    var_total = ((x - mean) ** 2 * w).sum() / w.sum() * x.shape[1]
    explained = (sigma ** 2).cumsum(0) / var_total
    full_mean = np.zeros((3, size * size), np.float32)
    full_mean[:, texels] = mean.view(3, -1).numpy()
    full_basis = np.zeros((k, 3, size * size), np.float32)
    full_basis[:, :, texels] = basis.view(k, 3, -1).numpy()
    # texels no face showed as skin (the eye openings, the inner lips) and those outside the tile's triangles: the
    # skin round them, no component (no seams at UV borders, no black in the openings)
    ever = np.zeros(size * size, bool)
    ever[texels] = (w.view(len(w), 3, -1)[:, 0] > 0).any(0).numpy()
    full_mean = push_pull(torch.from_numpy(full_mean.reshape(3, size, size)),
                          torch.from_numpy(ever.reshape(size, size)).float()).numpy().reshape(3, -1)
    full_basis[:, :, ~ever] = 0
    source = (f"{M} AFLW crops (of {count} drawn, seed {seed}; fits with landmark error <= {MAX_FIT_ERROR}), "
              f"mirrored; EM-PCA, K={k}; AFLW: research use only")
    write_albedo_model(output, full_mean.reshape(3, size, size), full_basis.reshape(k, 3, size, size),
                       sigma.numpy(), explained.numpy(), source)
    return {"faces": M, "k": k, "heldout_errors": errors, "explained": float(explained[-1])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.texture_model", description=__doc__.split("\n")[0])
    p.add_argument("crops", type=Path, help="the aflw-crops folder (annotations.npz, images/)")
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument("--count", type=int, default=3000, help="crops to draw (default 3000)")
    p.add_argument("--size", type=int, default=128, help="texels per side of the face tile (default 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--model", help="face model file")
    p.add_argument("--cache", type=Path, help="keep the unwrapped faces here (and reuse them when present)")
    p.add_argument("--prior", type=Path, help="albedo model the skin test compares with (default: the shipped one)")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    try:
        prior = AlbedoModel.load(args.prior) if args.prior or SHIPPED.is_file() else None
        info = build(args.crops, args.output, args.count, args.size, args.seed, prior, args.model, args.cache,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    except MlafaceError as e:
        print(f"texture_model: error: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.output}: {info['faces']} faces, K = {info['k']}, explains {info['explained']:.1%} of the "
          f"seen variance ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
