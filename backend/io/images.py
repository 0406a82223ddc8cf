"""Photo loading that users can trust: any common format, EXIF orientation applied, always 8-bit RGB.

JPEG, PNG, WebP, TIFF, BMP, PPM/PGM and what else Pillow reads; grayscale, palette, 16-bit, CMYK and alpha images
become RGB (transparent pixels are laid over white). Photos load whole (the texture needs full resolution) up to
Pillow's decompression-bomb limit (about 179 million pixels); detection works on a downscaled copy (`downscaled`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import MlafaceError

MIN_SIDE = 32  # pixels: a smaller photo cannot hold a face that the detectors find (they need about 40)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".ppm", ".pgm", ".pnm"}


def find_photos(paths: list[str | Path]) -> list[Path]:
    """Expand folders (their image files, sorted, not recursive) and glob patterns; other paths are kept as
    given so that a missing file is reported for that file."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        elif not p.exists() and any(c in str(p) for c in "*?["):
            out += sorted(Path(p.anchor or ".").glob(str(p.relative_to(p.anchor)) if p.anchor else str(p)))
        else:
            out.append(p)
    return out


def to_rgb8(img: Image.Image) -> np.ndarray:
    """A Pillow image in any mode -> [H, W, 3] uint8 RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(img, dtype=np.float64)
        scale = 65535.0 if a.max() > 255 else 255.0
        img = Image.fromarray(np.clip(a / scale * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif img.mode == "F":
        a = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(np.clip(a * (255.0 if a.max() <= 1 else 1.0) + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The photo opened by Pillow (pixels not yet decoded); MlafaceError naming the file for what is wrong, also
    when decoding inside the block fails."""
    if not path.is_file():
        raise MlafaceError(f"{path}: file not found" if not path.exists() else f"{path}: not a file")
    if path.stat().st_size == 0:
        raise MlafaceError(f"{path}: empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # large photos are fine
            with Image.open(path) as img:
                yield img
    except UnidentifiedImageError:
        raise MlafaceError(f"{path}: not an image Pillow can read") from None
    except Image.DecompressionBombError as e:
        raise MlafaceError(f"{path}: image too large to load safely ({e})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise MlafaceError(f"{path}: corrupt or truncated image ({e})") from None


def _check_size(path: Path, w: int, h: int) -> None:
    if min(h, w) < MIN_SIDE:
        raise MlafaceError(f"{path}: {w} x {h} pixels is too small to show a face (each side needs at least "
                           f"{MIN_SIDE} pixels)")


def check_photo(path: str | Path) -> None:
    """What load_image refuses that its header tells (missing, empty, not an image, too small), without decoding
    the pixels: a command checks its photos so before it loads any model."""
    path = Path(path)
    with _opened(path) as img:
        w, h = img.size
    _check_size(path, w, h)


def load_image(path: str | Path) -> np.ndarray:
    """Read a photo as [H, W, 3] uint8 RGB, upright (EXIF orientation applied). MlafaceError names the file."""
    path = Path(path)
    with _opened(path) as img:
        image = to_rgb8(ImageOps.exif_transpose(img))
    _check_size(path, image.shape[1], image.shape[0])
    return image


def downscaled(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """A copy whose longer side is at most max_side, and the factor that maps its pixels back (photo = small * f)."""
    h, w = image.shape[:2]
    factor = max(h, w) / max_side
    if factor <= 1:
        return image, 1.0
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    # contiguous first: PIL copies a strided array (a region cut from a frame) element by element, 8 ms for a
    # 720 x 825 region against 0.2
    small = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BILINEAR,
                                                                           reducing_gap=2.0))
    return small, w / size[0]


def png_bytes(image: np.ndarray) -> bytes:
    """[H, W, 3] uint8 -> a PNG file's bytes, zlib level 1 (PIL's default 6 takes twice as long for files a
    quarter smaller)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
