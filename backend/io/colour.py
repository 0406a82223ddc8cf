"""sRGB, the encoding of photos and texture files, and linear RGB, which shading works in. Each function takes a
numpy array or a torch tensor (values in [0, 1]) and returns the same kind, so the torch-free readers and the
renderer share one definition."""

from __future__ import annotations


def srgb_to_linear(x):
    """sRGB [0, 1] -> linear RGB (IEC 61966-2-1)."""
    low = x <= 0.04045
    return low * (x / 12.92) + ~low * ((x.clip(0, None) + 0.055) / 1.055) ** 2.4


def linear_to_srgb(x):
    """Linear RGB -> sRGB [0, 1], clipped; the power's argument is kept off 0, where its gradient is infinite."""
    x = x.clip(0, 1)
    low = x <= 0.0031308
    return low * (x * 12.92) + ~low * (1.055 * x.clip(0.0031308, None) ** (1 / 2.4) - 0.055)
