"""Training runs for real (tiny network, CPU): a smoke run, kill and resume, two processes under torchrun on
gloo, and `mlaface evaluate aflw2000` on benchmark images. Subprocesses, as users run them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import REPO, SHARED_DATA

from backend.network.checkpoint import load_network

CROPS = SHARED_DATA / "aflw-crops"
AFLW2000 = SHARED_DATA / "aflw2000-3d-dev"
pytestmark = [pytest.mark.skipif(not CROPS.is_dir(), reason=f"{CROPS} is absent"), pytest.mark.slow]


def train_cmd(out, model, *extra):
    return [sys.executable, "-m", "training.train", "--config", "tiny_smoke", "--out", str(out), "--model",
            str(model), "--no-progress", *extra]


def run(cmd, **kw):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env=env, **kw)


def state(path):
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def smoke_run(real_model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "smoke"
    r = run(train_cmd(out, real_model_path))
    assert r.returncode == 0, r.stderr
    return out, r


def test_smoke_run_writes_a_usable_network(smoke_run):
    out, r = smoke_run
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["steps"] == 6 and 0 < result["best_val_nme21"] < 100
    for name in ("checkpoint.pt", "best.pt", "last.pt", "log.csv", "curve.png", "config.json"):
        assert (out / name).is_file(), name
    assert any((out / "tensorboard").iterdir())
    rows = (out / "log.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == [1, 2, 3, 4, 5, 6]
    net = load_network(out / "best.pt")
    assert net.cfg.name == "mlanet_tiny" and net.cfg.n_texture > 0
    # a second run into the same folder without --resume is refused, nothing changed
    before = (out / "checkpoint.pt").stat().st_mtime_ns
    again = run(train_cmd(out, "unused"))
    assert again.returncode == 1 and "--resume" in again.stderr
    assert (out / "checkpoint.pt").stat().st_mtime_ns == before


def test_init_starts_from_earlier_weights(smoke_run, real_model_path, tmp_path):
    """A run that continues in a new sitting: --init takes a network file's weights, or grows them into more
    blocks per stage or adds a points head, and refuses another architecture's."""
    r = run(train_cmd(tmp_path / "next", real_model_path, "--init", str(smoke_run[0] / "best.pt"), "--set",
                      "run.steps=2"))
    assert r.returncode == 0, r.stderr
    assert f"initialised from {smoke_run[0] / 'best.pt'}" in r.stderr
    grown = run(train_cmd(tmp_path / "grown", real_model_path, "--init", str(smoke_run[0] / "best.pt"), "--set",
                          "run.steps=2", "--set", "network.depths=[2,1,1,2]"))
    assert grown.returncode == 0, grown.stderr
    assert "(stage depths (1, 1, 1, 1) -> (2, 1, 1, 2): 2 blocks added as identities)" in grown.stderr
    assert load_network(tmp_path / "grown" / "last.pt").cfg.depths == (2, 1, 1, 2)
    headed = run(train_cmd(tmp_path / "headed", real_model_path, "--init", str(smoke_run[0] / "best.pt"), "--set",
                           "run.steps=2", "--set", "network.points=true"))
    assert headed.returncode == 0, headed.stderr
    assert f"initialised from {smoke_run[0] / 'best.pt'} (the points head added)" in headed.stderr
    assert load_network(tmp_path / "headed" / "last.pt").cfg.points
    assert "points_syn" in (tmp_path / "headed" / "log.csv").read_text()  # the head is trained
    other = run(train_cmd(tmp_path / "other", real_model_path, "--init", str(smoke_run[0] / "best.pt"), "--set",
                          "network.fusion=false"))
    assert other.returncode == 1 and "another architecture" in other.stderr


def test_kill_and_resume_continues_exactly(smoke_run, real_model_path, tmp_path):
    out = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(train_cmd(out, real_model_path), cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # kill it mid-run: after the step-3 checkpoint, before the step-6 one
        log = out / "log.csv"
        if log.is_file() and len(log.read_text().splitlines()) >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert torch.load(out / "checkpoint.pt", weights_only=True)["step"] == 3
    assert not (out / "last.pt").exists()
    r = run(train_cmd(out, real_model_path, "--resume"))
    assert r.returncode == 0, r.stderr
    assert "resumed at step 3" in r.stderr
    uninterrupted = state(smoke_run[0] / "last.pt")
    resumed = state(out / "last.pt")
    for k, v in uninterrupted.items():
        assert torch.allclose(v.float(), resumed[k].float(), atol=1e-6), k
    steps = [int(row.split(",")[0]) for row in (out / "log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_two_processes_under_torchrun_on_gloo(real_model_path, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           *train_cmd(out, real_model_path)[1:], "--set", "run.steps=3"]
    r = run(cmd)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 rank(s)" in r.stderr
    assert r.stdout.count('"steps": 3') == 1  # rank 0 alone reports and writes
    assert len((out / "log.csv").read_text().splitlines()) == 4
    assert load_network(out / "last.pt").cfg.name == "mlanet_tiny"


@pytest.mark.skipif(not AFLW2000.is_dir(), reason=f"{AFLW2000} is absent")
def test_evaluate_aflw2000_cli(smoke_run, real_model_path, tmp_path):
    data = tmp_path / "aflw2000"
    data.mkdir()
    for mat in sorted(AFLW2000.glob("*.mat"))[:6]:
        shutil.copy(mat, data)
        shutil.copy(mat.with_suffix(".jpg"), data)
    out = tmp_path / "eval"
    cmd = [sys.executable, "-m", "backend", "evaluate", "aflw2000", str(data), "--weights",
           str(smoke_run[0] / "best.pt"), "--model", str(real_model_path), "-o", str(out), "--device", "cpu"]
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    assert "balanced" in r.stdout and "3DDFA_V2" in r.stdout
    report = json.loads((out / "aflw2000.json").read_text())
    assert len(report["images"]) == 6 and report["table"]["balanced"] > 0
    assert all(0 < row["nme_3d"] < 1 for row in report["images"])
    assert (out / "aflw2000_ced.png").stat().st_size > 1000
    # bad input: a folder with no benchmark files, missing weights
    empty = tmp_path / "empty"
    empty.mkdir()
    r = run(cmd[:5] + [str(empty)] + cmd[6:])
    assert r.returncode == 1 and "no AFLW2000-3D .mat files" in r.stderr
    r = run(cmd[:6] + ["--weights", str(tmp_path / "none.pt")] + cmd[8:])
    assert r.returncode == 1 and "not found" in r.stderr
    r = run(cmd + ["--every", "0"])
    assert r.returncode == 1 and "--every must be 1 or more, got 0" in r.stderr


@pytest.mark.skipif(not AFLW2000.is_dir(), reason=f"{AFLW2000} is absent")
def test_evaluate_the_whole_path_and_the_floor(smoke_run, real_model_path, tmp_path):
    """--pipeline runs detection, landmarks, network, blend and fit from the full photos and lists the faces it
    does not find (a blank photo here); --floor fits the benchmark's own points with both rules."""
    pytest.importorskip("dlib", reason="the dlib extra is not installed")
    from PIL import Image

    data = tmp_path / "aflw2000"
    data.mkdir()
    mats = sorted(AFLW2000.glob("*.mat"))[:2]
    for mat in mats:
        shutil.copy(mat, data)
        shutil.copy(mat.with_suffix(".jpg"), data)
    shutil.copy(mats[0], data / "image99999.mat")
    Image.new("RGB", (450, 450), "grey").save(data / "image99999.jpg")
    out = tmp_path / "eval"
    base = [sys.executable, "-m", "backend", "evaluate", "aflw2000", str(data), "--model", str(real_model_path),
            "-o", str(out), "--device", "cpu", "--fit-steps", "5"]
    r = run(base + ["--weights", str(smoke_run[0] / "best.pt"), "--pipeline"])
    assert r.returncode == 0, r.stderr
    assert "2 faces found (1 not found: image99999.jpg)" in r.stdout and "network only, GT crop (3)" in r.stdout
    report = json.loads((out / "aflw2000_pipeline.json").read_text())
    assert report["missed"] == ["image99999.jpg"] and len(report["images"]) == 2
    assert all(0 <= row["fit_quality"]["score"] <= 1 and row["nme_blend"] > 0 for row in report["images"])
    assert (out / "aflw2000_pipeline_ced.png").is_file()
    r = run(base + ["--floor", "--every", "2"])
    assert r.returncode == 0, r.stderr
    assert "3D points' rules" in r.stdout and "detector's rules" in r.stdout
    floor = json.loads((out / "aflw2000_floor.json").read_text())
    assert len(floor["3D points' rules"]["images"]) == 2
