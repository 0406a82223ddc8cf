"""Expression weights read from the pixels, for clips: the blinks and the jaw.

Landmark detectors miss two things animators need most: dlib keeps its lid points apart on a shut eye, and its
inner-lip points close early on an open mouth. So after the landmark fit, eyeBlinkLeft, eyeBlinkRight and jawOpen
are chosen per frame by analysis by synthesis: the head (its neutral shape, the frame's other expression weights
and pose, the clip's texture and light) is rendered into a small window around the feature with the weight at
every other one of the CANDIDATES values, then at the two beside the best of those; the render's anchor points
(eye or mouth corners, which detectors place well) are warped onto the detected ones (a similarity); each render,
after a per-channel gain (exposure changes), is compared with the frame (mean absolute difference, linear RGB, at
the best shift of up to SHIFT pixels); the best candidate is refined by a parabola through its neighbours. Only
the compared pixels' bounding box is rendered.

The inside of a feature has no texture. An eyeball takes its colour from the head's keyframe (each eyeball point
projected into that frame, where the eye is seen open), and only the open eye and FOCUS pixels around it are
compared. The mouth's inside, never seen in a neutral keyframe, takes the frame's own median colour inside the
opening that the landmark fit already shows; where that shows none, the jaw is not read. Its teeth are not
rendered: painted that one colour they would only hide the gums and tongue behind them (43% of the mouth's
triangles for a few pixels of coverage where the gums leave gaps; measured: the test clip's jaw a little better
without them, and its pixel reading 20% faster).

Not read (the landmark fit's value stays): a window that leaves the photo, an eye that shows too few eyeball pixels
when open, costs that barely differ. The far eye of a head turned more than FAR_EYE_YAW takes the near eye's value
(blinks are nearly always of both eyes; a wink there is lost). Over a clip, each eye's readings are measured from
its resting level (`from_rest`): the head's lids sit a little off the person's, and a small change of the test
render (an iris edge) moved every blink reading by 0.2, blinks and open frames alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..detect.align import similarity
from ..io.colour import srgb_to_linear
from ..io.face_result import FaceResult
from ..io.model_file import fan_triangulate
from ..io.parts import EYE_ROLES
from ..render.camera import project, to_camera, to_landmark_pixels
from ..render.raster import interpolate, rasterize, texture
from ..render.shading import shade_fragments

CANDIDATES = torch.linspace(0, 1, 11)
SHIFT = 3  # window pixels the frame may move against the render
SUPERSAMPLE = 2  # rendered at this many samples per window pixel and averaged: costs vary smoothly with a weight
FAR_EYE_YAW = 20.0  # degrees: beyond it the far eye is foreshortened beside the nose; it takes the near eye's value
MIN_CONTRAST = 0.03  # (worst - best) / best cost below which the pixels do not tell
REST_PERCENTILE = 10


@dataclass(frozen=True)
class Feature:
    """shape: the ARKit weight read; anchors: the two iBUG-68 points that place the window (and its warp);
    inside: the material roles of its untextured inside (io/parts.py), on the subject's `side` (+1 left, x > 0 in
    model space; -1 right; 0 both); size: (h, w) window pixels; span: the window's width over
    the anchors' distance; drop: the window's centre below the anchors' middle, in window widths; region: metres
    around the anchors' middle whose skin is rendered; focus: window pixels around the open eye that are compared
    (None: the whole window); min_inside: inside pixels the window must show to be read."""

    shape: str
    anchors: tuple[int, int]
    inside: tuple[str, ...]
    side: int
    size: tuple[int, int]
    span: float
    drop: float
    region: float
    focus: int | None
    min_inside: int


# The subject's left eye is on the image's right (iBUG 42-47).
FEATURES = {
    "left eye": Feature("eyeBlinkLeft", (42, 45), EYE_ROLES, 1, (32, 48), 1.6, 0.0, 0.03, 4, 40),
    "right eye": Feature("eyeBlinkRight", (36, 39), EYE_ROLES, -1, (32, 48), 1.6, 0.0, 0.03, 4, 40),
    "mouth": Feature("jawOpen", (48, 54), ("mouth",), 0, (48, 48), 2.0, 0.25, 0.045, None, 10),
}
EYES = ("left eye", "right eye")


@dataclass(frozen=True)
class Window:
    """Where a feature's window lies in the photo: origin (x0, y0) photo pixel edges of its top-left corner;
    scale: photo pixels per window pixel; size: (h, w) window pixels; warp: [2, 3] a similarity in photo pixels
    that moves the rendered anchors onto the detected ones."""

    origin: tuple[float, float]
    scale: float
    size: tuple[int, int]
    warp: np.ndarray

    def part(self, rows: tuple[int, int], cols: tuple[int, int]) -> Window:
        """The window's pixels rows [r0, r1) and cols [c0, c1) as a window of their own (the same pixel grid)."""
        (r0, r1), (c0, c1) = rows, cols
        origin = (self.origin[0] + c0 * self.scale, self.origin[1] + r0 * self.scale)
        return Window(origin, self.scale, (r1 - r0, c1 - c0), self.warp)


@dataclass(frozen=True)
class FeatureMesh:
    """The part of the head one feature's window shows: vertices [V', 3] and expression deltas [E, V', 3] (model
    space, metres), triangles [T, 3] into them, their corners' face-tile UVs corner_uvs [1, 3T, 2] (corner_faces
    [T, 3] indexes them) and inside [T] bool, the feature's untextured inside."""

    vertices: torch.Tensor
    deltas: torch.Tensor
    faces: torch.Tensor
    corner_uvs: torch.Tensor
    corner_faces: torch.Tensor
    inside: torch.Tensor


class Rig:
    """The head's face skin (textured) around each feature and the feature's inside, posed and rendered into
    windows; each feature renders its own part of the head alone."""

    def __init__(self, head: FaceResult, landmark_vertices: np.ndarray, device: torch.device | str = "cpu"):
        """landmark_vertices: [68] the face model's vertex ids of a detector's 68 points (FaceModelData.
        landmarks_detector68: the frames' points are dlib's)."""
        self.head, self.landmark_vertices = head, landmark_vertices
        corners, polygon = fan_triangulate(head.polygon_sizes)
        tris = head.corner_vertex[corners]
        material = head.polygon_material[polygon]
        skin = np.array([head.is_textured(m) for m in range(len(head.material_roles))])[material]
        role = head.material_roles[material]
        side = np.sign(head.vertices[tris, 0].mean(1))  # +1 on the subject's left
        uv = head.corner_uv[corners] - np.array([head.texture_tile, 0], np.float32)
        self.parts = {}
        for name, feature in FEATURES.items():
            inside = np.isin(role, feature.inside) & ((side == feature.side) | (feature.side == 0))
            centre = head.vertices[landmark_vertices[list(feature.anchors)]].mean(0)
            near = (np.linalg.norm(head.vertices[tris] - centre, axis=2) < feature.region).all(1)
            keep = (near & skin) | inside
            used, faces = np.unique(tris[keep], return_inverse=True)
            T = int(keep.sum())
            self.parts[name] = FeatureMesh(
                vertices=torch.from_numpy(head.vertices[used]).to(device),
                deltas=torch.from_numpy(head.expression_deltas[:, used]).to(device),
                faces=torch.from_numpy(faces.reshape(-1, 3).astype(np.int64)).to(device),
                corner_uvs=torch.from_numpy(uv[keep].reshape(1, T * 3, 2)).to(device),
                corner_faces=torch.arange(T * 3, device=device).view(T, 3),
                inside=torch.from_numpy(inside[keep]).to(device))
        self.names = [str(n) for n in head.expression_names]
        self.albedo = srgb_to_linear(torch.from_numpy(head.texture).to(device).permute(2, 0, 1).float() / 255)
        self.sh = torch.from_numpy(head.sh).to(device)
        self.focal = float(head.focal)
        self.image_size = tuple(int(s) for s in head.image_size)
        self.device = device

    def render(self, feature: str, weights: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
               window: Window) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """weights: [B, E]; rotation: [B, 3, 3]; translation: [B, 3] metres; one window for all B
        -> (colour [B, h, w, 3] linear RGB of the skin, points [B, h, w, 3] model-space surface points (metres),
        inside [B, h, w] bool (the feature's inside), covered [B, h, w] bool), (h, w) = window.size x SUPERSAMPLE."""
        B, part = weights.shape[0], self.parts[feature]
        verts = part.vertices + torch.einsum("be,evc->bvc", weights, part.deltas)
        cam = to_camera(verts, rotation, translation)
        screen = project(cam, self.focal, self.image_size)
        warp = torch.tensor(window.warp, dtype=cam.dtype, device=self.device)
        origin = torch.tensor(window.origin, dtype=cam.dtype, device=self.device)
        xy = screen[..., :2] @ warp[:, :2].T + warp[:, 2]
        screen = torch.cat([(xy - origin) / (window.scale / SUPERSAMPLE), screen[..., 2:]], -1)
        size = (window.size[0] * SUPERSAMPLE, window.size[1] * SUPERSAMPLE)
        # back faces are not drawn: the mouth's inside faces into the mouth, and the clip's figures are the same
        frags = rasterize(screen, part.faces, size, cull_backfaces=True)
        uv = interpolate(part.corner_uvs.expand(B, -1, -1), frags, part.corner_faces)
        colour = shade_fragments(cam, part.faces, frags, texture(self.albedo, uv), self.sh.expand(B, -1))
        points = interpolate(verts, frags, part.faces)
        inside = part.inside[frags.face_id.clamp(min=0)] & frags.mask
        return colour, points, inside, frags.mask

    def anchors(self, feature: str, weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray
                ) -> np.ndarray:
        """[2, 2] the feature's anchor points as the posed head shows them, photo pixels (0-based centres)."""
        ids = self.landmark_vertices[list(FEATURES[feature].anchors)]
        verts = self.head.vertices[ids] + np.tensordot(weights, self.head.expression_deltas[:, ids], axes=1)
        cam = torch.from_numpy(to_camera(verts, rotation, translation)[None].astype(np.float32))
        return to_landmark_pixels(cam, self.focal, self.image_size)[0].numpy()


def feature_window(landmarks: np.ndarray, feature: str, image_size: tuple[int, int], fitted: np.ndarray
                   ) -> Window | None:
    """The window of a feature from its detected anchors (landmarks [68, 2]), the render warped so that its anchors,
    `fitted` [2, 2], land on them; None when the window leaves the photo."""
    f = FEATURES[feature]
    a, b = landmarks[list(f.anchors)]
    width = f.span * float(np.linalg.norm(b - a))
    scale = width / f.size[1]
    centre = (a + b) / 2 + 0.5  # 0-based pixel centres -> pixel edges
    x0, y0 = centre[0] - width / 2, centre[1] + f.drop * width - scale * f.size[0] / 2
    H, W = image_size
    if x0 < 0 or y0 < 0 or x0 + width > W or y0 + scale * f.size[0] > H or width < 4:
        return None
    warp = similarity(fitted + 0.5, np.stack([a, b]) + 0.5)  # camera pixels: 0-based centres + 0.5
    return Window((float(x0), float(y0)), float(scale), f.size, warp)


def sample_window(image: np.ndarray, window: Window, margin: int = 0, device: torch.device | str = "cpu"
                  ) -> torch.Tensor:
    """image: [H, W, 3] uint8 sRGB -> [h + 2 margin, w + 2 margin, 3] linear RGB, the window's pixels and `margin`
    more on each side (bilinear at their centres; the photo's border repeats beyond it). Only the photo pixels
    the samples reach are converted (a 720p frame's three windows are a few thousand of its million pixels)."""
    h, w = window.size
    H, W = image.shape[:2]
    k = window.scale
    factor = int(k) if k > 1.5 else 1  # shrink first so that the samples average the pixels they stand for

    def span(origin: float, n: int, size: int) -> tuple[int, int]:
        lo = max(0, (math.floor(origin - margin * k) - factor) // factor * factor)  # on the shrinking grid
        return lo, min(size, math.ceil(origin + (n + margin) * k) + 2 * factor)

    (x0, x1), (y0, y1) = span(window.origin[0], w, W), span(window.origin[1], h, H)
    crop = srgb_to_linear(torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).to(device).float() / 255)
    crop = crop.permute(2, 0, 1)[None]
    if factor > 1:
        crop = F.avg_pool2d(crop, factor, ceil_mode=True)
    extent_x, extent_y = crop.shape[3] * factor, crop.shape[2] * factor  # crop pixels the shrunk copy spans
    xs = window.origin[0] - x0 + (torch.arange(-margin, w + margin, device=device) + 0.5) * k
    ys = window.origin[1] - y0 + (torch.arange(-margin, h + margin, device=device) + 0.5) * k
    grid = torch.stack(torch.meshgrid(xs / extent_x * 2 - 1, ys / extent_y * 2 - 1, indexing="xy"), -1)
    out = F.grid_sample(crop, grid[None].float(), mode="bilinear", align_corners=False, padding_mode="border")
    return out[0].permute(1, 2, 0)


def window_costs(painted: torch.Tensor, covered: torch.Tensor, focus: torch.Tensor, target: torch.Tensor
                 ) -> torch.Tensor:
    """painted: [C, h, w, 3] renders of candidates; covered: [C, h, w] bool; focus: [h, w] bool, the pixels
    that tell; target: [h + 2 S, w + 2 S, 3] the window with SHIFT (S) more pixels each side -> [C] mean
    absolute difference over the focus pixels that every candidate covers, after a per-channel gain, at the best
    shift of the target by up to SHIFT pixels."""
    h, w = painted.shape[1:3]
    m = (covered.all(0) & focus)[None, ..., None].to(painted.dtype)
    shifted = target.unfold(0, h, 1).unfold(1, w, 1).permute(0, 1, 3, 4, 2).reshape(-1, h, w, 3)  # [S', h, w, 3]
    p = painted[:, None]  # [C, 1, h, w, 3]
    gain = ((p * shifted * m).sum((2, 3)) / (p.square() * m).sum((2, 3)).clamp(min=1e-8)).clamp(0.5, 2)
    diff = ((p * gain[:, :, None, None] - shifted).abs() * m).sum((2, 3, 4)) / (m.sum() * 3).clamp(min=1)
    return diff.min(1).values


def best_candidate(costs: torch.Tensor) -> float:
    """[C] costs at CANDIDATES (inf where not measured) -> the minimum, refined by a parabola through its
    neighbours where both are measured."""
    i = int(costs.argmin())
    x = float(CANDIDATES[i])
    if 0 < i < len(costs) - 1 and bool(costs[i - 1:i + 2].isfinite().all()):
        a, b, c = (float(v) for v in costs[i - 1:i + 2])
        curve = a - 2 * b + c
        if curve > 0:
            x += 0.5 * (a - c) / curve * float(CANDIDATES[1] - CANDIDATES[0])
    return min(max(x, 0.0), 1.0)


def from_rest(values: np.ndarray) -> np.ndarray:
    """values: [N] one eye's readings through a clip (NaN where not read) -> measured from the eye's resting level
    (the REST_PERCENTILE of the readings: eyes are open most of the time) and rescaled so that shut stays 1.
    A clip whose eyes are shut more than that share of the time reads them open."""
    if np.isfinite(values).sum() < 3:
        return values
    rest = float(np.nanpercentile(values, REST_PERCENTILE))
    return np.clip((values - rest) / max(1 - rest, 1e-6), 0, 1)


class PixelReader:
    """Per-frame eyeBlinkLeft, eyeBlinkRight and jawOpen of one head through a clip (see the module docstring)."""

    def __init__(self, head: FaceResult, key_image: np.ndarray, landmark_vertices: np.ndarray,
                 device: torch.device | str = "cpu"):
        """head: the clip's neutral head, fitted (expression_weights, pose, landmarks) to key_image [H, W, 3]
        uint8; landmark_vertices: [68] the face model's detector68 vertex ids (Rig)."""
        self.rig = Rig(head, landmark_vertices, device)
        self.device = device
        self.key_image = self._linear(key_image)
        self.key_rotation = torch.from_numpy(head.rotation).to(device)
        self.key_translation = torch.from_numpy(head.translation).to(device)
        self.key_warp = {eye: torch.from_numpy(similarity(
            self.rig.anchors(eye, head.expression_weights, head.rotation, head.translation) + 0.5,
            head.landmarks[list(FEATURES[eye].anchors)] + 0.5)).float().to(device) for eye in EYES}

    def _linear(self, image: np.ndarray) -> torch.Tensor:
        return srgb_to_linear(torch.from_numpy(image).to(self.device).float() / 255)

    def _key_colour(self, points: torch.Tensor, eye: str) -> torch.Tensor:
        """[..., 3] model-space eyeball points -> [..., 3] the key image's colour where it shows them."""
        H, W = self.rig.image_size
        cam = to_camera(points.reshape(1, -1, 3), self.key_rotation, self.key_translation)
        warp = self.key_warp[eye]
        pix = project(cam, self.rig.focal, (H, W))[0, :, :2] @ warp[:, :2].T + warp[:, 2]
        grid = torch.stack([pix[:, 0] / W * 2 - 1, pix[:, 1] / H * 2 - 1], -1)
        out = F.grid_sample(self.key_image.permute(2, 0, 1)[None], grid[None, None], align_corners=False,
                            padding_mode="border")
        return out[0, :, 0].T.reshape(points.shape)

    def _read(self, feature: str, image: np.ndarray, landmarks: np.ndarray, weights: np.ndarray,
              rotation: np.ndarray, translation: np.ndarray) -> float | None:
        f = FEATURES[feature]
        window = feature_window(landmarks, feature, image.shape[:2],
                                self.rig.anchors(feature, weights, rotation, translation))
        if window is None:
            return None
        C, e = len(CANDIDATES), self.rig.names.index(f.shape)
        # the probe: the open eye, or the mouth as the landmark fit has it; too little inside there, no reading
        probe = 0 if feature in EYES else int(torch.argmin((CANDIDATES - float(weights[e])).abs()))
        w = torch.from_numpy(weights).to(self.device).repeat(C, 1)
        w[:, e] = CANDIDATES.to(self.device)
        rot = torch.from_numpy(rotation).to(self.device).expand(C, 3, 3)
        trans = torch.from_numpy(translation).to(self.device).expand(C, 3)
        probe_render = self.rig.render(feature, w[probe:probe + 1], rot[:1], trans[:1], window)
        _, _, probe_inside, _ = probe_render
        seen = F.max_pool2d(probe_inside[:, None].float(), SUPERSAMPLE)[0, 0] > 0
        if int(seen.sum()) < f.min_inside:
            return None
        frame = sample_window(image, window, SHIFT, self.device)
        if feature in EYES:  # compared around the open eye
            focus = F.max_pool2d(seen[None, None].float(), 2 * f.focus + 1, 1, f.focus)[0, 0] > 0
        else:  # the mouth's inside as this frame shows it, in the opening the landmark fit already has
            fill = frame[SHIFT:-SHIFT, SHIFT:-SHIFT][seen].median(0).values
            focus = torch.ones(f.size, dtype=torch.bool, device=self.device)
        # only the focus's bounding box is rendered: no triangle outside it can change a pixel inside it
        rows, cols = focus.any(1).nonzero()[:, 0], focus.any(0).nonzero()[:, 0]
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        part = window.part((r0, r1), (c0, c1))
        frame, focus = frame[r0:r1 + 2 * SHIFT, c0:c1 + 2 * SHIFT], focus[r0:r1, c0:c1]

        def paint(rendered: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
            """Renders (Rig.render's four) -> painted [n, h, w, 3] (the inside filled), covered [n, h, w]."""
            colour, points, inside, covered = rendered
            painted = torch.where(inside[..., None], self._key_colour(points, feature) if feature in EYES
                                  else fill, colour)  # the eyeball as the keyframe shows it
            painted = F.avg_pool2d(painted.permute(0, 3, 1, 2), SUPERSAMPLE).permute(0, 2, 3, 1)
            return painted, F.avg_pool2d(covered[:, None].float(), SUPERSAMPLE)[:, 0] == 1

        # the probe is one candidate already rendered: its render cut to the focus box (the same pixel grid)
        rs, cs = slice(r0 * SUPERSAMPLE, r1 * SUPERSAMPLE), slice(c0 * SUPERSAMPLE, c1 * SUPERSAMPLE)
        done = {probe: paint(tuple(t[:, rs, cs] for t in probe_render))}

        def costs_of(ids: list[int]) -> torch.Tensor:
            """[len(ids)] the candidates' costs, rendering those not rendered yet."""
            todo = [i for i in ids if i not in done]
            if todo:
                painted, covered = paint(self.rig.render(feature, w[todo], rot[todo], trans[todo], part))
                done.update({i: (painted[k:k + 1], covered[k:k + 1]) for k, i in enumerate(todo)})
            return window_costs(torch.cat([done[i][0] for i in ids]), torch.cat([done[i][1] for i in ids]),
                                focus, frame)

        # every other candidate, then the two beside the best of those (8 renders with the probe, not 12)
        coarse = list(range(0, C, 2))
        best = coarse[int(costs_of(coarse).argmin())]
        ids = coarse + [i for i in (best - 1, best + 1) if 0 <= i < C]
        costs = torch.full((C,), float("inf"), device=self.device)
        costs[ids] = costs_of(ids)
        measured = costs[ids]
        if float((measured.max() - measured.min()) / measured.min().clamp(min=1e-8)) < MIN_CONTRAST:
            return None
        return best_candidate(costs)

    @torch.no_grad()
    def read(self, image: np.ndarray, landmarks: np.ndarray, weights: np.ndarray, rotation: np.ndarray,
             translation: np.ndarray) -> dict[str, float | None]:
        """One frame: image [H, W, 3] uint8, its landmarks [68, 2], the landmark fit's weights [E], rotation
        [3, 3], translation [3] -> {ARKit name: weight, or None where the pixels do not tell} for eyeBlinkLeft,
        eyeBlinkRight and jawOpen."""
        turn = float(rotation[0, 2])  # > 0: the face looks towards the image's right, its left eye turns away
        far, near = ("left eye", "right eye") if turn > 0 else ("right eye", "left eye")
        out = {}
        for feature, f in FEATURES.items():
            skip = feature == far and abs(turn) > np.sin(np.radians(FAR_EYE_YAW))
            out[f.shape] = None if skip else self._read(feature, image, landmarks, weights, rotation, translation)
        if out[FEATURES[far].shape] is None:
            out[FEATURES[far].shape] = out[FEATURES[near].shape]
        return out
