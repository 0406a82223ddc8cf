"""Synthetic training faces rendered on the fly, with exact ground truth.

Each face: identity ~ N(0, 1); ARKit expression weights in [0, 1] drawn as facial *actions* that move shapes
together the way faces do (both eyes blink together, a smile raises the cheeks, a jaw drop opens the lips), plus
the odd one-sided shape; a head pose from frontal to full profile; SH light (ambient plus a random direction,
slightly tinted); albedo from the albedo model; a background from the real crops (their borders) or smooth noise.
The face is framed as the benchmark and the pipeline frame real faces: its 68-landmark box centred, a square crop
of sqrt(2) times the box side (backend.detect.align), with jitter. All on the device of the models, from a torch
Generator, so a batch is a pure function of its seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backend.io.colour import linear_to_srgb
from backend.model.albedo_model import AlbedoModel
from backend.model.face_model import FaceModel
from backend.model.pose import euler_to_matrix
from backend.network.decode import CROP_DEPTH, CROP_FOCAL
from backend.render.camera import project, to_camera, to_landmark_pixels
from backend.render.head import FaceRenderer
from backend.render.shading import ambient_sh

# facial actions: ARKit shapes that move together, "*" standing for Left and Right
ACTIONS = (
    ("eyeBlink*",), ("eyeSquint*", "cheekSquint*"), ("eyeWide*", "browOuterUp*"), ("browInnerUp*",),
    ("browDown*", "noseSneer*"), ("browOuterUp*", "browInnerUp*"), ("mouthSmile*", "cheekSquint*", "eyeSquint*"),
    ("mouthSmile*",), ("jawOpen",), ("jawOpen", "mouthLowerDown*", "mouthUpperUp*"), ("jawOpen", "mouthFunnel"),
    ("mouthPucker",), ("mouthFunnel",), ("mouthFrown*", "mouthShrugLower"), ("mouthPress*", "mouthRollLower"),
    ("mouthStretch*",), ("mouthDimple*",), ("mouthRollUpper", "mouthRollLower"), ("mouthShrugUpper",),
    ("cheekPuff*",), ("jawLeft", "mouthLeft"), ("jawRight", "mouthRight"), ("jawForward",), ("mouthClose", "jawOpen"),
    ("eyeLookUp*",), ("eyeLookDown*",), ("eyeLookInLeft", "eyeLookOutRight"), ("eyeLookOutLeft", "eyeLookInRight"),
)


HOLE_KERNEL = 9  # pixels: closes the eye and mouth openings of the face subset at 128 px and above


def fill_holes(image: torch.Tensor, mask: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
    """The face subset has no eyeballs or mouth interior: pixels inside its openings (uncovered, but inside the
    mask's morphological closing) get `colour` ([B, 3, 1, 1]) instead of the background.
    image: [B, 3, S, S]; mask: [B, S, S] bool."""
    m = mask[:, None].float()
    k = HOLE_KERNEL
    closed = -F.max_pool2d(-F.max_pool2d(m, k, 1, k // 2), k, 1, k // 2)
    return torch.where((closed > 0) & (m == 0), colour.expand_as(image), image)


@dataclass(frozen=True)
class SyntheticConfig:
    yaw_profile_share: float = 0.4  # share of faces with yaw uniform in +-90 deg; the rest N(0, 20 deg)
    pitch_deg: float = 12.0  # standard deviations
    roll_deg: float = 10.0
    neutral_share: float = 0.25
    max_actions: int = 3
    one_sided_share: float = 0.15  # chance that one shape of a pair fires alone
    texture_scale: float = 0.8  # albedo coefficients ~ N(0, texture_scale^2), the first texture_components
    texture_components: int = 40
    scale_jitter: float = 0.08  # relative face size
    shift_jitter: float = 0.04  # of the crop side
    noise: float = 0.02  # pixel noise (sRGB)


def action_matrix(names: list[str]) -> torch.Tensor:
    """[A, E] 0/1: which expression shapes each action moves."""
    m = torch.zeros(len(ACTIONS), len(names))
    for a, shapes in enumerate(ACTIONS):
        for s in shapes:
            for side in ("Left", "Right") if "*" in s else ("",):
                m[a, names.index(s.replace("*", side))] = 1
    return m


class SyntheticFaces:
    """model: the face subset; albedo: the albedo model; backgrounds: [N, 3, h, w] uint8 images (real crops) or
    None; size: output crop side in pixels."""

    def __init__(self, model: FaceModel, albedo: AlbedoModel, size: int, backgrounds: torch.Tensor | None = None,
                 cfg: SyntheticConfig = SyntheticConfig()):
        self.model, self.albedo, self.size, self.cfg = model, albedo, size, cfg
        self.renderer = FaceRenderer(model)
        self.backgrounds = backgrounds
        self.actions = action_matrix(model.expression_names).to(model.mean.device)
        self.pairs = self._pairs(model.expression_names)
        self.focal = CROP_FOCAL * size / 224

    @staticmethod
    def _pairs(names: list[str]) -> list[tuple[int, int]]:
        return [(i, names.index(n[:-4] + "Right")) for i, n in enumerate(names)
                if n.endswith("Left") and n[:-4] + "Right" in names]

    def _expression(self, B: int, g: torch.Generator, device) -> torch.Tensor:
        cfg, A = self.cfg, len(ACTIONS)
        n_act = torch.randint(1, cfg.max_actions + 1, (B,), generator=g, device=device)
        scores = torch.rand(B, A, generator=g, device=device)
        rank = scores.argsort(1).argsort(1)
        chosen = (rank < n_act[:, None]).float() * torch.rand(B, A, generator=g, device=device)  # strengths
        expr = (chosen[:, :, None] * self.actions[None]).amax(1)  # [B, E]
        expr = expr * (0.8 + 0.4 * torch.rand(expr.shape, generator=g, device=device))  # sides differ a little
        one_sided = torch.rand(B, generator=g, device=device) < cfg.one_sided_share
        if self.pairs:
            pick = torch.randint(0, len(self.pairs), (B,), generator=g, device=device)
            side = torch.randint(0, 2, (B,), generator=g, device=device)
            idx = torch.tensor(self.pairs, device=device)[pick, side]
            amount = torch.rand(B, generator=g, device=device)
            rows = torch.arange(B, device=device)[one_sided]
            expr[rows, idx[one_sided]] = amount[one_sided]
        neutral = torch.rand(B, generator=g, device=device) < cfg.neutral_share
        return torch.where(neutral[:, None], torch.zeros_like(expr), expr).clamp(0, 1)

    def _pose(self, B: int, g: torch.Generator, device) -> torch.Tensor:
        cfg = self.cfg
        wide = torch.rand(B, generator=g, device=device) < cfg.yaw_profile_share
        yaw = torch.where(wide, (torch.rand(B, generator=g, device=device) * 2 - 1) * 90,
                          torch.randn(B, generator=g, device=device) * 20).clamp(-90, 90)
        pitch = (torch.randn(B, generator=g, device=device) * cfg.pitch_deg).clamp(-40, 40)
        roll = (torch.randn(B, generator=g, device=device) * cfg.roll_deg).clamp(-35, 35)
        return euler_to_matrix(*(torch.deg2rad(a) for a in (pitch, yaw, roll)))

    def _light(self, B: int, g: torch.Generator, device) -> torch.Tensor:
        strength = 0.6 + 0.6 * torch.rand(B, 1, 1, generator=g, device=device)
        tint = 1 + 0.1 * torch.randn(B, 3, 1, generator=g, device=device)
        sh = ambient_sh(1.0, B).to(device).view(B, 3, 9) * strength * tint
        direction = F.normalize(torch.randn(B, 1, 3, generator=g, device=device), dim=-1)
        sh[:, :, 1:4] = 0.5 * strength * tint * direction[..., [1, 2, 0]]  # band 1 order: y, z, x
        sh[:, :, 4:] = 0.1 * strength * torch.randn(B, 1, 5, generator=g, device=device)
        return sh.reshape(B, 27)

    def _background(self, B: int, g: torch.Generator, device) -> torch.Tensor:
        S = self.size
        noise = F.interpolate(torch.rand(B, 3, 4, 4, generator=g, device=device), size=(S, S), mode="bicubic",
                              align_corners=False).clamp(0, 1)
        if self.backgrounds is None:
            return noise
        pick = torch.randint(0, len(self.backgrounds), (B,), generator=g, device=self.backgrounds.device)
        real = F.interpolate(self.backgrounds[pick].to(device).float() / 255, size=(S, S), mode="bilinear",
                             align_corners=False, antialias=True).flip(-1)
        use_real = torch.rand(B, 1, 1, 1, generator=g, device=device) < 0.7
        return torch.where(use_real, real, noise)

    def _frame(self, verts: torch.Tensor, rotation: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Translation [B, 3] that puts the 68-landmark box at the crop centre at 1 / sqrt(2) of its side."""
        B, device, S, cfg = verts.shape[0], verts.device, self.size, self.cfg
        lm = self.model.landmarks(verts) @ rotation.transpose(1, 2)
        depth = torch.full((B,), CROP_DEPTH, device=device)
        for _ in range(2):  # the box from a guess, then corrected (near-orthographic at this focal length)
            t = torch.stack([torch.zeros_like(depth), torch.zeros_like(depth), -depth], 1)
            px = project(lm + t[:, None], self.focal, (S, S))[..., :2]
            lo, hi = px.min(1).values, px.max(1).values
            side = (hi - lo).amax(1)
            depth = depth * side / (S / math.sqrt(2))
        t = torch.stack([torch.zeros_like(depth), torch.zeros_like(depth), -depth], 1)
        px = project(lm + t[:, None], self.focal, (S, S))[..., :2]
        centre = (px.min(1).values + px.max(1).values) / 2
        scale = 1 + cfg.scale_jitter * (2 * torch.rand(B, generator=g, device=device) - 1)
        shift = cfg.shift_jitter * S * (2 * torch.rand(B, 2, generator=g, device=device) - 1)
        target = S / 2 + shift
        depth = depth * scale
        offset = (target - centre) * depth[:, None] / self.focal  # metres in x, y (image y points down)
        return torch.stack([offset[:, 0], -offset[:, 1], -depth], 1)

    @torch.no_grad()
    def sample(self, B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        """A batch: image [B, 3, S, S] sRGB in [0, 1], and the truth: identity [B, 100], expression [B, 53],
        texture [B, k] (the albedo model's first k = texture_components), rotation [B, 3, 3], translation [B, 3],
        focal [B], sh [B, 27],
        verts_cam [B, V, 3] metres, lm68 [B, 68, 2] and lm21 [B, 21, 2] crop pixels (0-based centres),
        vis21 [B, 21] bool (all true: the model's points are fixed vertices)."""
        device, cfg, S = self.model.mean.device, self.cfg, self.size
        identity = torch.randn(B, self.model.n_identity, generator=g, device=device)
        expression = self._expression(B, g, device)
        # the first k components only (the rest would be 0): any network predicting k or more is compared with them
        k = min(cfg.texture_components, self.albedo.n_components)
        texture = cfg.texture_scale * torch.randn(B, k, generator=g, device=device)
        rotation = self._pose(B, g, device)
        verts = self.model.vertices(identity, expression)
        translation = self._frame(verts, rotation, g)
        cam = to_camera(verts, rotation, translation)
        focal = torch.full((B,), self.focal, device=device)
        sh = self._light(B, g, device)
        face, mask = self.renderer.render(cam, focal, self.albedo(texture), sh, S)
        image = torch.where(mask[:, None], linear_to_srgb(face), self._background(B, g, device))
        image = fill_holes(image, mask, 0.05 + 0.2 * torch.rand(B, 3, 1, 1, generator=g, device=device))
        image = (image + cfg.noise * torch.randn(image.shape, generator=g, device=device)).clamp(0, 1)
        lm68 = to_landmark_pixels(self.model.landmarks(cam), focal, (S, S))
        lm21 = to_landmark_pixels(self.model.landmarks(cam, "aflw21"), focal, (S, S))
        return {"image": image, "identity": identity, "expression": expression, "texture": texture,
                "rotation": rotation, "translation": translation, "focal": focal, "sh": sh, "verts_cam": cam,
                "lm68": lm68, "lm21": lm21, "vis21": torch.ones(B, 21, dtype=torch.bool, device=device)}


class SyntheticPool:
    """A fixed set of n synthetic faces rendered once (a pure function of the seed), drawn from at random: on a
    CPU, rendering every batch's faces (about 15 ms each) would cost more than the network's step. Vertices are
    not stored (9k x 3 floats a face) but rebuilt from the parameters; images are held as uint8. `sample` gives
    what SyntheticFaces.sample gives, before the caller's colour jitter."""

    def __init__(self, synth: SyntheticFaces, n: int, seed: int, chunk: int = 256):
        parts = []
        for start in range(0, n, chunk):
            g = torch.Generator(synth.model.mean.device).manual_seed(seed * 1_000_003 + start)
            b = synth.sample(min(chunk, n - start), g)
            b["image"] = (b["image"] * 255).round().to(torch.uint8)
            del b["verts_cam"]
            parts.append(b)
        self.data = {k: torch.cat([b[k] for b in parts]) for k in parts[0]}
        self.model = synth.model

    def __len__(self) -> int:
        return len(self.data["image"])

    def sample(self, B: int, g: torch.Generator) -> dict[str, torch.Tensor]:
        device = self.data["image"].device
        index = torch.randint(0, len(self), (B,), generator=g, device=device)
        out = {k: v[index] for k, v in self.data.items()}
        out["image"] = out["image"].float() / 255
        out["verts_cam"] = to_camera(self.model.vertices(out["identity"], out["expression"]), out["rotation"],
                                     out["translation"])
        return out
