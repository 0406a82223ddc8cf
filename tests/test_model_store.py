"""Finding, installing and downloading the face model, and the `mlaface model` commands."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from backend.io.errors import MlafaceError
from backend.model.facekit import convert
from backend.model.store import MODEL_ENV, default_model_path, download_model, install_model, resolve_model_path
from backend.serve.cli import main


def test_lookup_order(tiny_facekit, tmp_path, monkeypatch):
    with pytest.raises(MlafaceError, match="no face model installed.*mlaface model install --download"):
        resolve_model_path()
    cached = install_model(tiny_facekit)
    assert cached == default_model_path() and str(tmp_path / "xdg-cache" / "mlaface") in str(cached)
    assert resolve_model_path() == cached
    env_model = install_model(tiny_facekit, tmp_path / "env.npz")
    monkeypatch.setenv(MODEL_ENV, str(env_model))
    assert resolve_model_path() == env_model
    explicit = install_model(tiny_facekit, tmp_path / "explicit.npz")
    assert resolve_model_path(explicit) == explicit
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "gone.npz"))
    with pytest.raises(MlafaceError, match=r"gone\.npz: face model file not found \(named by \$MLAFACE_MODEL\)"):
        resolve_model_path()
    with pytest.raises(MlafaceError, match=r"missing\.npz: face model file not found"):
        resolve_model_path(tmp_path / "missing.npz")


def _github_style_zip(folder, path):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("ICT-FaceKit-abc/README.md", "ICT-FaceKit")
        for f in folder.iterdir():
            z.write(f, f"ICT-FaceKit-abc/FaceXModel/{f.name}")
    return path


def test_download_checks_digest_and_installs(tiny_facekit, tmp_path):
    archive = _github_style_zip(tiny_facekit, tmp_path / "facekit.zip")
    digest = convert(tiny_facekit).source_digest
    seen = []
    path = download_model(archive.as_uri(), digest, progress=lambda done, total: seen.append(done))
    assert path == default_model_path() and path.is_file()
    assert seen and seen[-1] == archive.stat().st_size
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # the downloaded archive is gone


def test_download_with_wrong_digest_installs_nothing(tiny_facekit, tmp_path):
    archive = _github_style_zip(tiny_facekit, tmp_path / "facekit.zip")
    with pytest.raises(MlafaceError, match="do not match the pinned checksum.*nothing installed"):
        download_model(archive.as_uri(), hashlib.sha256(b"other").hexdigest())
    assert list(default_model_path().parent.iterdir()) == []


def test_download_failure_is_clear(tmp_path):
    with pytest.raises(MlafaceError, match="download of .*absent.zip failed.*nothing installed"):
        download_model((tmp_path / "absent.zip").as_uri(), "0" * 64)
    assert not default_model_path().exists()


def test_failed_install_keeps_previous_model(tiny_facekit, tmp_path):
    good = install_model(tiny_facekit)
    before = good.read_bytes()
    (tiny_facekit / "identity001.obj").write_text("v 0 0 0\n")
    with pytest.raises(MlafaceError, match="identity001.obj: 1 vertices"):
        install_model(tiny_facekit)
    assert good.read_bytes() == before


def test_cli_install_and_info(tiny_facekit, capsys):
    assert main(["model", "install", "--from", str(tiny_facekit)]) == 0
    assert "installed face model" in capsys.readouterr().out
    assert main(["model", "info"]) == 0
    out = capsys.readouterr().out
    assert "vertices:       97" in out and "identity modes: 2" in out and "expressions:    2" in out


def test_cli_errors_exit_non_zero(tmp_path, capsys):
    assert main(["model", "info"]) == 1
    assert "mlaface: error: no face model installed" in capsys.readouterr().err
    assert main(["model", "install", "--from", str(tmp_path / "nothing")]) == 1
    assert "nothing: not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["model", "install", "--from", str(tmp_path), "--url", "file:///x.zip"])
    assert e.value.code == 2


def test_console_script_runs(tiny_facekit, tmp_path):
    """The installed `mlaface` console script, in a subprocess, as users run it."""
    script = Path(sys.executable).parent / "mlaface"
    assert script.is_file(), "install the project (pip install -e .) to get the mlaface command"
    out = tmp_path / "m.npz"
    def run(*a):
        return subprocess.run([str(script), *a], capture_output=True, text=True)
    r = run("model", "install", "--from", str(tiny_facekit), "-o", str(out))
    assert r.returncode == 0, r.stderr
    r = run("model", "info", "--model", str(out))
    assert r.returncode == 0 and "vertices:       97" in r.stdout
    r = run("model", "info", "--model", str(tmp_path / "nope.npz"))
    assert r.returncode == 1 and "nope.npz: face model file not found" in r.stderr
