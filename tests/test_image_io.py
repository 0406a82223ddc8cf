"""Photo loading: formats, EXIF orientation, modes, and files that are not photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.io.errors import MlafaceError
from backend.io.images import check_photo, downscaled, find_photos, load_image


@pytest.fixture
def photo() -> np.ndarray:
    """A 60 x 40 RGB picture with distinct corners."""
    a = np.zeros((60, 40, 3), np.uint8)
    a[:30, :20] = (255, 0, 0)
    a[30:, 20:] = (0, 0, 255)
    return a


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".webp", ".tif", ".ppm", ".bmp"])
def test_formats(tmp_path, photo, suffix):
    path = tmp_path / f"p{suffix}"
    Image.fromarray(photo).save(path, quality=95) if suffix in (".jpg", ".webp") else Image.fromarray(photo).save(path)
    out = load_image(path)
    assert out.shape == (60, 40, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() < 8


def test_exif_orientation_applied(tmp_path, photo):
    stored = np.rot90(photo, k=1)  # how a phone stores a picture taken turned, plus orientation tag 6
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "turned.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "turned.jpg")
    assert out.shape == (60, 40, 3)
    assert np.abs(out.astype(int) - photo).mean() < 8


def test_modes_become_rgb(tmp_path, photo):
    gray = Image.fromarray(photo).convert("L")
    gray.save(tmp_path / "gray.png")
    assert np.array_equal(load_image(tmp_path / "gray.png")[..., 0], np.asarray(gray))
    rgba = np.dstack([photo, np.full((60, 40), 255, np.uint8)])
    rgba[0, 0, 3] = 0  # a transparent pixel is laid over white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = load_image(tmp_path / "rgba.png")
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[59, 39]) == (0, 0, 255)
    deep = (np.asarray(gray).astype(np.uint16) * 257)  # 16-bit grey, full range
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert np.abs(load_image(tmp_path / "deep.png")[..., 0].astype(int) - np.asarray(gray)).max() <= 1
    Image.fromarray(photo).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert np.abs(load_image(tmp_path / "cmyk.jpg").astype(int) - photo).mean() < 10
    Image.fromarray(photo).convert("P").save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (60, 40, 3)


@pytest.mark.parametrize("read", [load_image, check_photo])
def test_bad_files(tmp_path, photo, read):
    """load_image and check_photo (the header alone, before any model loads) refuse the same files in the same
    words (a photo whose header is whole and body truncated is only found by load_image's decoding)."""
    with pytest.raises(MlafaceError, match="nothing.jpg: file not found"):
        read(tmp_path / "nothing.jpg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(MlafaceError, match="empty.jpg: empty file"):
        read(tmp_path / "empty.jpg")
    (tmp_path / "notes.jpg").write_text("not a picture at all")
    with pytest.raises(MlafaceError, match="notes.jpg: not an image"):
        read(tmp_path / "notes.jpg")
    Image.fromarray(np.zeros((20, 300, 3), np.uint8)).save(tmp_path / "strip.png")
    with pytest.raises(MlafaceError, match="strip.png: 300 x 20 pixels is too small"):
        read(tmp_path / "strip.png")
    with pytest.raises(MlafaceError, match="not a file"):
        read(tmp_path)
    Image.fromarray(photo).save(tmp_path / "cut.jpg", quality=95)
    data = (tmp_path / "cut.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(MlafaceError, match="cut.jpg: corrupt or truncated image"):  # this one cuts its header
        read(tmp_path / "cut.jpg")


def test_downscaled_and_find_photos(tmp_path, photo):
    small, f = downscaled(np.zeros((3000, 2000, 3), np.uint8), 1000)
    assert small.shape == (1000, 667, 3) and f == pytest.approx(2000 / 667)
    same, f1 = downscaled(photo, 1000)
    assert same is photo and f1 == 1.0
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in find_photos([tmp_path])] == ["a.png", "b.jpg"]
    assert [p.name for p in find_photos([str(tmp_path / "*.jpg")])] == ["b.jpg"]
    assert find_photos([tmp_path / "missing.jpg"]) == [tmp_path / "missing.jpg"]


@pytest.mark.parametrize("width, height", [(1, 1), (20, 4000), (4000, 31)])
def test_photos_too_small_for_a_face(tmp_path, width, height):
    """Before, a 1 x 1 photo or a 20 x 4000 strip ended inside a library ("Filter windows must be small enough to fit
    into the padded image.")."""
    path = tmp_path / f"strip_{width}x{height}.png"
    Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(path)
    with pytest.raises(MlafaceError, match=rf"strip_{width}x{height}.png: {width} x {height} pixels is too small"):
        load_image(path)
    Image.fromarray(np.full((max(height, 32), max(width, 32), 3), 128, np.uint8)).save(path)
    assert load_image(path).shape == (max(height, 32), max(width, 32), 3)
