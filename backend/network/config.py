"""Network architectures: NetworkConfig and the named variants (`create_network(name)` in mlanet.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..io.errors import MlafaceError

LKA_KERNELS = (5, 7, 3)  # VAN's large-kernel attention: local kernel, dilated kernel, dilation (a 23 x 23 field)


@dataclass(frozen=True)
class NetworkConfig:
    """Architecture and output sizes; the parameter vector's layout is decode.param_layout."""

    name: str = "mlanet_r50"
    block: str = "bottleneck"  # "bottleneck" (ResNet-50), "basic" (ResNet-18) or "separable" (depth-wise, CPUs)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)  # bottleneck blocks output 4x these
    stem_width: int = 64
    channel_attention: bool = True
    spatial_attention: bool = True  # large-kernel attention after each stage
    lka_kernels: tuple[int, int, int] = LKA_KERNELS
    fusion: bool = True
    fusion_width: int = 256
    head_width: int = 512
    image_size: int = 224
    n_identity: int = 100
    n_expression: int = 53
    n_texture: int = 80
    drop: float = 0.0
    confidence: bool = False  # a head for the 68 points' expected error (decode.landmark_sigma)
    points: bool = False  # a head regressing the 68 points in the crop directly from the stride-16 map
    # (MLANet.forward_features; decode.crop_points)

    def __post_init__(self):
        for name in ("depths", "widths", "lka_kernels"):  # lists from TOML or a checkpoint's plain types
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.block not in ("basic", "bottleneck", "separable") or len(self.depths) != 4 or len(self.widths) != 4:
            raise MlafaceError(f"bad network config: block {self.block!r}, {len(self.depths)} stages (need 4)")
        if self.image_size < 32:
            raise MlafaceError(f"bad network config: image_size {self.image_size} (32 pixels or more)")
        if not 0 <= self.drop < 1:
            raise MlafaceError(f"bad network config: drop {self.drop} (from 0 to below 1)")


VARIANTS = {
    "mlanet_r50": NetworkConfig(),
    "mlanet_r18": NetworkConfig(name="mlanet_r18", block="basic", depths=(2, 2, 2, 2), fusion_width=128,
                                head_width=256),
    # for 2 CPU cores: depth-wise separable stages, a 3x3 stride-2 stem without max-pooling, 112 px crops,
    # large-kernel attention over an 11 x 11 field (VAN's 23 x 23 takes 2/3 of a CPU training step there); its
    # 68 points regressed directly besides the face model's (they learn faster than pose and shape do on a CPU)
    "mlanet_dw": NetworkConfig(name="mlanet_dw", block="separable", depths=(1, 2, 3, 2), widths=(32, 64, 128, 256),
                               stem_width=16, fusion_width=64, head_width=128, image_size=112, lka_kernels=(3, 5, 2),
                               confidence=True, points=True),
    "mlanet_tiny": NetworkConfig(name="mlanet_tiny", block="basic", depths=(1, 1, 1, 1), widths=(16, 32, 64, 128),
                                 stem_width=16, fusion_width=32, head_width=64, image_size=64),
}
DEFAULT_VARIANT = "mlanet_r50"
