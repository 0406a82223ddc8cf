"""Eye closure from pixels, for clips.

A landmark detector's lid points rarely close on a blink (dlib keeps them apart on a closed eye), so a fit to the
landmarks alone misses blinks. After that fit, each frame's eyeBlinkLeft / eyeBlinkRight are chosen by analysis
by synthesis: the head (its neutral shape, the frame's other expression weights and pose, the clip's texture and
light) is rendered into a small window around each eye with the blink at CANDIDATES values from open to shut; the
eyeball's pixels take their colour from the head's keyframe (each eyeball point projected into that frame, where
the eye is seen open); each render, after a per-channel gain (exposure changes), is compared with the frame (mean
absolute difference, linear RGB, over the open eye and a few pixels around it, at the best shift of a few
pixels). The best candidate is refined by a parabola through its neighbours. The far eye of a head turned more
than FAR_EYE_YAW takes the near eye's value (blinks are nearly always of both eyes; a wink there is lost). An eye
the window does not show well (too few eyeball pixels when open) or whose costs barely differ keeps the landmark
fit's value. Over a clip, each eye's readings are measured from its resting level (`from_rest`): the head's lids
sit a little off the person's, and a small change of the render (an iris edge) moved every reading of a test clip
by 0.2, blinks and open frames alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .camera import project
from .face_result import FaceResult
from .model_file import fan_triangulate
from .render import interpolate, rasterize, texture
from .shading import shade, vertex_normals
from .texture import srgb_to_linear

CANDIDATES = torch.linspace(0, 1, 11)
WINDOW = (32, 48)  # (h, w) pixels the eye window is resampled to; its photo side is 1.6 eye widths
WINDOW_SCALE = 1.6
SUPERSAMPLE = 2  # rendered at this many samples per window pixel and averaged: costs vary smoothly with the blink
SHIFT = 3  # window pixels the target may move against the render
FOCUS = 4  # window pixels around the open eye that are compared (not the head's outline further out)
REGION = 0.03  # metres around an eyeball's centre: the triangles rendered
FAR_EYE_YAW = 20.0  # degrees: beyond it the far eye is foreshortened beside the nose; it takes the near eye's value
MIN_EYE_PIXELS = 40  # eyeball pixels the open eye must show in its window
MIN_CONTRAST = 0.03
REST_PERCENTILE = 10  # (worst - best) / best cost below which the pixels do not tell
# eye -> (ARKit shape, iBUG-68 corner points, eyeball materials). The subject's left eye is on the image's right.
EYES = {"left": ("eyeBlinkLeft", (42, 45), ("M_ScleraLeft", "M_IrisLeft", "M_PupilLeft")),
        "right": ("eyeBlinkRight", (36, 39), ("M_ScleraRight", "M_IrisRight", "M_PupilRight"))}


@dataclass(frozen=True)
class EyeWindow:
    """Where one eye's window lies in the photo: origin (x0, y0) photo pixel edges of its top-left corner;
    scale: photo pixels per window pixel; warp: [2, 3] a similarity in photo pixels that moves the rendered eye's
    corners onto the detected ones (the fitted pose places them to a pixel or so)."""

    origin: tuple[float, float]
    scale: float
    warp: np.ndarray


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[2, 3] the similarity (scale, rotation, shift) that maps the two points src [2, 2] onto dst [2, 2]."""
    a, b = src[1] - src[0], dst[1] - dst[0]
    z = complex(*b) / complex(*a)
    m = np.array([[z.real, -z.imag], [z.imag, z.real]])
    return np.concatenate([m, (dst[0] - m @ src[0])[:, None]], 1)


class EyeRig:
    """The head's face skin (textured) and eyeballs around both eyes, posed and rendered into eye windows."""

    def __init__(self, head: FaceResult, landmark_vertices: np.ndarray, device: torch.device | str = "cpu"):
        """landmark_vertices: [68] the face model's iBUG-68 vertex ids (FaceModelData.landmarks_ibug68)."""
        names = [str(n) for n in head.material_names]
        self.corner_ids = {eye: landmark_vertices[list(ids)] for eye, (_, ids, _) in EYES.items()}
        self.head = head
        corners, polygon = fan_triangulate(head.polygon_sizes)
        tris = head.corner_vertex[corners]
        material = head.polygon_material[polygon]
        skin = np.array([head.is_textured(m) for m in range(len(names))])[material]
        eyeball, near = np.zeros(len(tris), bool), np.zeros(len(tris), bool)
        for _, _, parts in EYES.values():
            mine = np.isin(material, [names.index(p) for p in parts if p in names])  # older models: no M_Pupil
            centre = head.vertices[tris[mine]].reshape(-1, 3).mean(0)
            near |= (np.linalg.norm(head.vertices[tris] - centre, axis=2) < REGION).all(1)
            eyeball |= mine
        keep = near & (skin | eyeball)
        used, faces = np.unique(tris[keep], return_inverse=True)
        self.names = [str(n) for n in head.expression_names]
        self.vertices = torch.from_numpy(head.vertices[used]).to(device)
        self.deltas = torch.from_numpy(head.expression_deltas[:, used]).to(device)  # [E, V', 3]
        self.faces = torch.from_numpy(faces.reshape(-1, 3).astype(np.int64)).to(device)
        self.eyeball = torch.from_numpy(eyeball[keep]).to(device)
        T = len(self.faces)
        uv = head.corner_uv[corners[keep]] - np.array([head.texture_tile, 0], np.float32)
        self.corner_uvs = torch.from_numpy(uv.reshape(1, T * 3, 2)).to(device)
        self.corner_faces = torch.arange(T * 3, device=device).view(T, 3)
        self.albedo = srgb_to_linear(torch.from_numpy(head.texture).to(device).permute(2, 0, 1).float() / 255)
        self.sh = torch.from_numpy(head.sh).to(device)
        self.focal = float(head.focal)
        self.image_size = tuple(int(s) for s in head.image_size)
        self.device = device

    def render(self, weights: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor,
               windows: list[EyeWindow]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """weights: [B, E]; rotation: [B, 3, 3]; translation: [B, 3] metres; windows: B eye windows
        -> (colour [B, h, w, 3] linear RGB of the skin, points [B, h, w, 3] model-space surface points (metres),
        eyeball [B, h, w] bool, covered [B, h, w] bool), (h, w) = WINDOW times SUPERSAMPLE."""
        B = len(windows)
        verts = self.vertices + torch.einsum("be,evc->bvc", weights, self.deltas)
        cam = verts @ rotation.transpose(1, 2) + translation[:, None]
        screen = project(cam, self.focal, self.image_size)
        warp = torch.tensor(np.stack([w.warp for w in windows]), dtype=cam.dtype, device=self.device)
        origin = torch.tensor([w.origin for w in windows], dtype=cam.dtype, device=self.device)
        k = torch.tensor([w.scale for w in windows], dtype=cam.dtype, device=self.device) / SUPERSAMPLE
        xy = screen[..., :2] @ warp[:, :, :2].transpose(1, 2) + warp[:, None, :, 2]
        screen = torch.cat([(xy - origin[:, None]) / k[:, None, None], screen[..., 2:]], -1)
        size = (WINDOW[0] * SUPERSAMPLE, WINDOW[1] * SUPERSAMPLE)
        frags = rasterize(screen, self.faces, size, cull_backfaces=True)
        uv = interpolate(self.corner_uvs.expand(B, -1, -1), frags, self.corner_faces)
        normals = F.normalize(interpolate(vertex_normals(cam, self.faces), frags, self.faces), dim=-1)
        colour = shade(texture(self.albedo, uv), normals, self.sh.expand(B, -1))
        points = interpolate(verts, frags, self.faces)
        eyeball = self.eyeball[frags.face_id.clamp(min=0)] & frags.mask
        return colour, points, eyeball, frags.mask

    def corners(self, eye: str, weights: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
        """[2, 2] the eye's two iBUG corners as the posed head shows them, photo pixels (0-based centres)."""
        ids = self.corner_ids[eye]
        verts = self.head.vertices[ids] + np.tensordot(weights, self.head.expression_deltas[:, ids], axes=1)
        cam = torch.from_numpy((verts @ rotation.T + translation)[None].astype(np.float32))
        return project(cam, self.focal, self.image_size)[0, :, :2].numpy() - 0.5


def eye_window(landmarks: np.ndarray, eye: str, image_size: tuple[int, int], fitted: np.ndarray) -> EyeWindow | None:
    """The window around one eye from its detected iBUG-68 corners (landmarks [68, 2]), the render warped so that
    its corners, `fitted` [2, 2], land on them; None when the window leaves the photo."""
    a, b = landmarks[list(EYES[eye][1])]
    width = WINDOW_SCALE * float(np.linalg.norm(b - a))
    scale = width / WINDOW[1]
    centre = (a + b) / 2 + 0.5  # 0-based pixel centres -> pixel edges
    x0, y0 = centre[0] - width / 2, centre[1] - scale * WINDOW[0] / 2
    H, W = image_size
    if x0 < 0 or y0 < 0 or x0 + width > W or y0 + scale * WINDOW[0] > H or width < 4:
        return None
    warp = similarity(fitted + 0.5, np.stack([a, b]) + 0.5)  # camera pixels: 0-based centres + 0.5
    return EyeWindow((float(x0), float(y0)), float(scale), warp)


def sample_window(image: torch.Tensor, window: EyeWindow, margin: int = 0) -> torch.Tensor:
    """image: [H, W, 3] linear RGB -> [h + 2 margin, w + 2 margin, 3] the window's pixels and `margin` more on
    each side (bilinear at their centres; the photo's border repeats beyond it)."""
    h, w = WINDOW
    H, W = image.shape[:2]
    xs = window.origin[0] + (torch.arange(-margin, w + margin, device=image.device) + 0.5) * window.scale
    ys = window.origin[1] + (torch.arange(-margin, h + margin, device=image.device) + 0.5) * window.scale
    grid = torch.stack(torch.meshgrid(xs / W * 2 - 1, ys / H * 2 - 1, indexing="xy"), -1)
    if window.scale > 1.5:  # shrink first so that the samples average the pixels they stand for
        factor = int(window.scale)
        image = F.avg_pool2d(image.permute(2, 0, 1)[None], factor, ceil_mode=True)[0].permute(1, 2, 0)
    out = F.grid_sample(image.permute(2, 0, 1)[None], grid[None], mode="bilinear", align_corners=False,
                        padding_mode="border")
    return out[0].permute(1, 2, 0)


def window_costs(painted: torch.Tensor, covered: torch.Tensor, focus: torch.Tensor, target: torch.Tensor
                 ) -> torch.Tensor:
    """painted: [C, h, w, 3] renders of candidates; covered: [C, h, w] bool; focus: [h, w] bool, the pixels
    that tell; target: [h + 2 S, w + 2 S, 3] the window with SHIFT more pixels each side -> [C] mean absolute
    difference over the focus pixels that every candidate covers, after a per-channel gain, at the best shift
    of the target by up to SHIFT pixels."""
    h, w = WINDOW
    m = (covered.all(0) & focus)[None, ..., None].to(painted.dtype)
    shifted = target.unfold(0, h, 1).unfold(1, w, 1).permute(0, 1, 3, 4, 2).reshape(-1, h, w, 3)  # [S', h, w, 3]
    p = painted[:, None]  # [C, 1, h, w, 3]
    gain = ((p * shifted * m).sum((2, 3)) / (p.square() * m).sum((2, 3)).clamp(min=1e-8)).clamp(0.5, 2)
    diff = ((p * gain[:, :, None, None] - shifted).abs() * m).sum((2, 3, 4)) / (m.sum() * 3).clamp(min=1)
    return diff.min(1).values


def best_candidate(costs: torch.Tensor) -> float:
    """[C] costs at CANDIDATES -> the minimum, refined by a parabola through its neighbours."""
    i = int(costs.argmin())
    x = float(CANDIDATES[i])
    if 0 < i < len(costs) - 1:
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


class BlinkReader:
    """Per-frame eyeBlink weights of one head through a clip (see the module docstring)."""

    def __init__(self, head: FaceResult, key_image: np.ndarray, landmark_vertices: np.ndarray,
                 device: torch.device | str = "cpu"):
        """head: the clip's neutral head, fitted (expression_weights, pose, landmarks) to key_image [H, W, 3]
        uint8; landmark_vertices: [68] the face model's iBUG-68 vertex ids."""
        self.rig = EyeRig(head, landmark_vertices, device)
        self.device = device
        self.key_image = self._linear(key_image)
        self.key_rotation = torch.from_numpy(head.rotation).to(device)
        self.key_translation = torch.from_numpy(head.translation).to(device)
        self.key_warp = {eye: torch.from_numpy(similarity(
            self.rig.corners(eye, head.expression_weights, head.rotation, head.translation) + 0.5,
            head.landmarks[list(ids)] + 0.5)).float().to(device) for eye, (_, ids, _) in EYES.items()}

    def _linear(self, image: np.ndarray) -> torch.Tensor:
        return srgb_to_linear(torch.from_numpy(image).to(self.device).float() / 255)

    def _eyeball_colour(self, points: torch.Tensor, eye: str) -> torch.Tensor:
        """[..., 3] model-space points -> [..., 3] the key image's colour where it shows them."""
        H, W = self.rig.image_size
        cam = points.reshape(1, -1, 3) @ self.key_rotation.T + self.key_translation
        warp = self.key_warp[eye]
        pix = project(cam, self.rig.focal, (H, W))[0, :, :2] @ warp[:, :2].T + warp[:, 2]
        grid = torch.stack([pix[:, 0] / W * 2 - 1, pix[:, 1] / H * 2 - 1], -1)
        out = F.grid_sample(self.key_image.permute(2, 0, 1)[None], grid[None, None], align_corners=False,
                            padding_mode="border")
        return out[0, :, 0].T.reshape(points.shape)

    @torch.no_grad()
    def read(self, image: np.ndarray, landmarks: np.ndarray, weights: np.ndarray, rotation: np.ndarray,
             translation: np.ndarray) -> dict[str, float | None]:
        """One frame: image [H, W, 3] uint8, its landmarks [68, 2], the landmark fit's weights [E], rotation
        [3, 3], translation [3] -> {ARKit blink name: weight, or None where the pixels do not tell}."""
        target = self._linear(image)
        C = len(CANDIDATES)
        out: dict[str, float | None] = {}
        turn = float(rotation[0, 2])  # > 0: the face looks towards the image's right, its left eye turns away
        far = "left" if turn > 0 else "right"
        for eye, (name, _, _) in EYES.items():
            out[name] = None
            if eye == far and abs(turn) > np.sin(np.radians(FAR_EYE_YAW)):
                continue
            window = eye_window(landmarks, eye, image.shape[:2],
                                self.rig.corners(eye, weights, rotation, translation))
            if window is None:
                continue
            w = torch.from_numpy(weights).to(self.device).repeat(C, 1)
            w[:, self.rig.names.index(name)] = CANDIDATES.to(self.device)
            rot = torch.from_numpy(rotation).to(self.device).expand(C, 3, 3)
            trans = torch.from_numpy(translation).to(self.device).expand(C, 3)
            colour, points, eyeball, covered = self.rig.render(w, rot, trans, [window] * C)
            painted = torch.where(eyeball[..., None], self._eyeball_colour(points, eye), colour)
            painted = F.avg_pool2d(painted.permute(0, 3, 1, 2), SUPERSAMPLE).permute(0, 2, 3, 1)
            covered = F.avg_pool2d(covered[:, None].float(), SUPERSAMPLE)[:, 0] == 1
            eyeball = F.max_pool2d(eyeball[:, None].float(), SUPERSAMPLE)[:, 0] > 0
            if int(eyeball[0].sum()) < MIN_EYE_PIXELS:
                continue
            focus = F.max_pool2d(eyeball[:1, None].float(), 2 * FOCUS + 1, 1, FOCUS)[0, 0] > 0
            costs = window_costs(painted, covered, focus, sample_window(target, window, SHIFT))
            if float((costs.max() - costs.min()) / costs.min().clamp(min=1e-8)) >= MIN_CONTRAST:
                out[name] = best_candidate(costs)
        near_name, far_name = (EYES[e][0] for e in (("right", "left") if far == "left" else ("left", "right")))
        if out[far_name] is None:
            out[far_name] = out[near_name]
        return out
