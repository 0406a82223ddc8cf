"""Scan-to-mesh distance after the protocols' alignment (numpy and scipy; millimetres throughout).

The protocol, as NoW documents it (Sanyal et al. 2019, the now_evaluation README and code) and as MICC Florence
is commonly scored (the scan cropped around the nose tip, the prediction aligned by ICP):
1. Crop the scan to the face: with the scan's 7 landmarks (NOW_LANDMARKS' order), the vertices within
   1.4 x (outer eye-corner distance + nose length) / 2 of a centre 0.3 of the way from the nose's bottom to the
   point between the inner eye corners; without them, within CROP_RADIUS_MM of the nose tip.
2. Align the predicted mesh to the scan: a similarity (rotation, translation, scale) from the 7 landmark pairs
   (Umeyama's least squares), else from the nose tips, then refined by ICP of scale, rotation and translation
   minimising the distance from each cropped scan vertex to the predicted surface.
3. The error: for each cropped scan vertex, its distance to the nearest point of the aligned predicted surface;
   reported as mean, median and standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

# NoW's 7 landmarks as iBUG-68 points: the outer and inner corner of the subject's right eye, the inner and outer
# corner of the left, the bottom of the nose, the right and left mouth corners.
NOW_LANDMARKS = (36, 39, 42, 45, 33, 48, 54)
CROP_RADIUS_MM = 95.0  # MICC Florence: the scan within 95 mm of the nose tip
ICP_ITERATIONS = 30
ICP_POINTS = 3000  # ICP follows this many scan points (evenly drawn, a fixed seed); the error is over all
CANDIDATES = 12  # triangles (nearest by centroid) searched for each point's closest point


@dataclass(frozen=True)
class Similarity:
    """x -> scale * rotation @ x + translation."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.scale * points @ self.rotation.T + self.translation

    def then(self, other: Similarity) -> Similarity:
        """other after self."""
        return Similarity(other.scale * self.scale, other.rotation @ self.rotation,
                          other.scale * other.rotation @ self.translation + other.translation)


def similarity(src: np.ndarray, dst: np.ndarray, weights: np.ndarray | None = None) -> Similarity:
    """The similarity taking src [N, 3] nearest to dst [N, 3] in least squares (Umeyama 1991; no reflection)."""
    w = np.ones(len(src)) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mu_s, mu_d = w @ src, w @ dst
    a, b = src - mu_s, dst - mu_d
    cov = (b * w[:, None]).T @ a
    u, sv, vt = np.linalg.svd(cov)
    d = np.ones(3)
    d[2] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((sv * d).sum() / (w @ (a * a).sum(1)))
    return Similarity(scale, rotation, mu_d - scale * rotation @ mu_s)


def now_crop(points: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """NoW's face mask: [N] bool, the points within its radius of its face centre (landmarks [7, 3])."""
    bridge = (landmarks[1] + landmarks[2]) / 2
    centre = landmarks[4] + 0.3 * (bridge - landmarks[4])
    radius = 1.4 * (np.linalg.norm(landmarks[0] - landmarks[3]) + np.linalg.norm(bridge - landmarks[4])) / 2
    return np.linalg.norm(points - centre, axis=1) <= radius


def nose_tip(points: np.ndarray) -> np.ndarray:
    """A frontal scan's nose tip: the point farthest towards the viewer (+z, the scan's depth axis) among those
    near the middle of the face (within a third of its width of the centre in x and y)."""
    centre = np.median(points, 0)
    width = np.ptp(points[:, 0])
    near = np.abs(points[:, :2] - centre[:2]).max(1) < width / 3
    pool = points[near] if near.any() else points
    return pool[np.argmax(pool[:, 2])]


class Surface:
    """A triangle mesh to measure distances to: vertices [V, 3], triangles [T, 3] int."""

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray, ring: np.ndarray | None = None):
        self.vertices = np.asarray(vertices, np.float64)
        self.triangles = np.asarray(triangles, np.int64)
        self.tree = cKDTree(self.vertices[self.triangles].mean(1))
        self.vertex_tree = cKDTree(self.vertices)
        self.ring = vertex_triangles(self.triangles, len(self.vertices)) if ring is None else ring

    def moved(self, transform: Similarity) -> Surface:
        """The same mesh moved: new search trees, the same topology."""
        return Surface(transform(self.vertices), self.triangles, self.ring)

    def closest(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """points [N, 3] -> (distance [N], closest surface point [N, 3]); searched in the CANDIDATES triangles
        whose centroids are nearest and the triangles of the nearest vertex."""
        k = min(CANDIDATES, len(self.triangles))
        _, cand = self.tree.query(points, k=k)
        _, nearest = self.vertex_tree.query(points)
        cand = np.concatenate([cand.reshape(len(points), k), self.ring[nearest]], 1)
        tri = self.vertices[self.triangles[cand]]  # [N, C, 3, 3]
        q = closest_on_triangles(np.repeat(points[:, None], cand.shape[1], 1), tri[..., 0, :], tri[..., 1, :],
                                 tri[..., 2, :])
        d = np.linalg.norm(q - points[:, None], axis=-1)
        best = d.argmin(1)
        rows = np.arange(len(points))
        return d[rows, best], q[rows, best]


def vertex_triangles(triangles: np.ndarray, n_vertices: int) -> np.ndarray:
    """Each vertex's triangles, padded by repeating its first: [V, most triangles at a vertex] int64."""
    owner = triangles.ravel()
    order = np.argsort(owner, kind="stable")
    counts = np.bincount(owner, minlength=n_vertices)
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slot = np.arange(len(owner)) - np.repeat(first, counts)
    ring = np.full((n_vertices, max(1, counts.max())), -1, np.int64)
    ring[owner[order], slot] = order // 3
    return np.where(ring < 0, ring[:, :1], ring)


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The closest point to p on triangle (a, b, c), all [..., 3] (Ericson, Real-Time Collision Detection 5.1.5:
    by the Voronoi region of p: a vertex, an edge or the inside)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = va + vb + vc
        v_in, w_in = vb / denom, vc / denom
        t_ab = d1 / (d1 - d3)
        t_ac = d2 / (d2 - d6)
        t_bc = (d4 - d3) / ((d4 - d3) + (d5 - d6))
    out = a + v_in[..., None] * ab + w_in[..., None] * ac  # inside
    regions = [  # later ones win: vertices over edges over the inside, as Ericson's early returns
        ((va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0), b + t_bc[..., None] * (c - b)),
        ((vb <= 0) & (d2 >= 0) & (d6 <= 0), a + t_ac[..., None] * ac),
        ((vc <= 0) & (d1 >= 0) & (d3 <= 0), a + t_ab[..., None] * ab),
        ((d6 >= 0) & (d5 <= d6), c),
        ((d3 >= 0) & (d4 <= d3), b),
        ((d1 <= 0) & (d2 <= 0), a),
    ]
    for mask, point in regions:
        out = np.where(mask[..., None], point, out)
    return out


def icp(points: np.ndarray, surface: Surface, start: Similarity, iterations: int = ICP_ITERATIONS) -> Similarity:
    """Refine the similarity placing the surface on the scan points [N, 3] (ICP_POINTS of them): each round, the
    closest surface point of every scan point, then the similarity taking those surface points onto the scan
    points; stops when the mean distance changes by less than 1e-5 of itself."""
    if len(points) > ICP_POINTS:
        points = points[np.random.default_rng(0).choice(len(points), ICP_POINTS, replace=False)]
    transform, last = start, np.inf
    for _ in range(iterations):
        dist, near = surface.moved(transform).closest(points)
        transform = transform.then(similarity(near, points))
        mean = float(dist.mean())
        if abs(last - mean) <= 1e-5 * mean:
            break
        last = mean
    return transform


def scan_errors(scan_points: np.ndarray, scan_landmarks: np.ndarray | None, mesh: Surface,
                mesh_landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray, Similarity]:
    """The protocol (module docstring): scan [N, 3] mm with its 7 landmarks [7, 3] or None; the predicted surface
    (any unit) with its 7 landmarks [7, 3] -> (errors [M] mm of the cropped scan points, those points [M, 3],
    the similarity placing the prediction on the scan)."""
    if scan_landmarks is not None:
        keep = now_crop(scan_points, scan_landmarks)
        start = similarity(mesh_landmarks, scan_landmarks)
    else:
        tip = nose_tip(scan_points)
        keep = np.linalg.norm(scan_points - tip, axis=1) <= CROP_RADIUS_MM
        start = Similarity(1.0, np.eye(3), tip - nose_tip(mesh.vertices))  # both frontal, in mm
    cropped = scan_points[keep]
    transform = icp(cropped, mesh, start)
    errors, _ = mesh.moved(transform).closest(cropped)
    return errors, cropped, transform
