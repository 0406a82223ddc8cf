"""The npz writer: a plain zip that np.load and zipfile read, and a read-only array's entry reused only while it
is the same object."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from backend.io.errors import MlafaceError
from backend.io.npz_file import read_npz, write_npz


def test_round_trip_through_np_load_and_zipfile(tmp_path):
    arrays = {"vertices": np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32),
              "names": np.array(["eyeBlinkLeft", "jawOpen"]), "focal": np.array(1.25), "empty": np.zeros((0, 3)),
              "ids": np.arange(7, dtype=np.int32), "label": np.array("ümlaut ok")}
    path = write_npz(tmp_path / "a.npz", "test kind", 3, arrays)
    with zipfile.ZipFile(path) as zf:
        assert zf.testzip() is None  # every entry's CRC checks
        assert [i.compress_type for i in zf.infolist()] == [zipfile.ZIP_DEFLATED] * 8
    back = read_npz(path, "test kind", 3, "test file", list(arrays))
    for name, a in arrays.items():
        assert back[name].dtype == a.dtype and np.array_equal(back[name], a), name
    with pytest.raises(MlafaceError, match="version 3"):
        read_npz(path, "test kind", 4, "test file", [])


def test_read_only_arrays_reuse_their_entry_and_nothing_else_does(tmp_path):
    frozen = np.arange(1000, dtype=np.float32)
    frozen.flags.writeable = False
    loose = np.arange(1000, dtype=np.float32)
    write_npz(tmp_path / "1.npz", "k", 1, {"frozen": frozen, "loose": loose})
    loose *= 2  # a writable array changed in place between writes is deflated again
    other = np.ones(1000, np.float32)  # another read-only array under the same name is not the first one
    other.flags.writeable = False
    write_npz(tmp_path / "2.npz", "k", 1, {"frozen": frozen, "loose": loose})
    write_npz(tmp_path / "3.npz", "k", 1, {"frozen": other, "loose": loose})
    second = read_npz(tmp_path / "2.npz", "k", 1, "test file", [])
    third = read_npz(tmp_path / "3.npz", "k", 1, "test file", [])
    assert np.array_equal(second["frozen"], frozen) and np.array_equal(second["loose"], np.arange(1000) * 2)
    assert np.array_equal(third["frozen"], other)
    assert (tmp_path / "1.npz").read_bytes()[:200] == (tmp_path / "2.npz").read_bytes()[:200]


def test_an_unwritable_place_leaves_no_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OSError):
        write_npz(tmp_path / "file" / "a.npz", "k", 1, {"a": np.zeros(3)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
