"""The AFLW training crops (../shared/data/aflw-crops): 120 x 120 face crops with AFLW's 21 points.

annotations.npz: names [N], pts21 [N, 21, 2] float32 crop pixels (NaN = not visible), yaw_deg [N],
roi_box_original [N, 4]. The points' left/right are as seen in the image (AFLW21_FLIP swaps them for a mirrored
crop). None of these crops is an AFLW2000-3D image. AFLW: research use only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from backend.io.errors import MlafaceError

# index of each point's mirror partner (brows, eyes, ears, nose wings and mouth corners swap; centres stay)
AFLW21_FLIP = np.array([5, 4, 3, 2, 1, 0, 11, 10, 9, 8, 7, 6, 16, 15, 14, 13, 12, 19, 18, 17, 20])


def load_crops(folder: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """-> names [N], images [N, 120, 120, 3] uint8 RGB, pts21 [N, 21, 2] float32 (NaN hidden), yaw_deg [N];
    the first `limit` crops in file order when given."""
    folder = Path(folder)
    ann = folder / "annotations.npz"
    if not ann.is_file():
        raise MlafaceError(f"{folder}: no annotations.npz (expected the aflw-crops folder)")
    with np.load(ann, allow_pickle=False) as a:
        names, pts, yaw = a["names"], a["pts21"].astype(np.float32), a["yaw_deg"].astype(np.float32)
    if limit is not None:
        names, pts, yaw = names[:limit], pts[:limit], yaw[:limit]
    images = np.empty((len(names), 120, 120, 3), np.uint8)
    for i, name in enumerate(names):
        path = folder / "images" / str(name)
        try:
            with Image.open(path) as im:
                images[i] = np.asarray(im.convert("RGB").resize((120, 120)))
        except OSError as e:
            raise MlafaceError(f"{path}: cannot read training crop ({e})") from None
    return names, images, pts, yaw
