"""The backend's private Python environment, made and repaired by the add-on (no bpy: tested with plain pytest too).

Under the extension's user folder (bpy.utils.extension_path_user): `backend-env/` (a virtual environment made by a
Python that has venv and ensurepip: Blender's own where it can, else the one the user names), `install.log`,
`install.json` (what the last install left: versions, device, or the error), and `face-model.npz`.

An install runs in stages, each a subprocess whose output goes to the log: environment, check (the environment's
pip resolves every package for this Python and platform as wheels only, before anything is installed: a missing
wheel is named, not compiled half-way), torch (PyPI's CPU build by default, a CUDA build where an NVIDIA GPU is found
or the user asks), mlaface (the wheel inside this extension, with its extras), verify; every step under the
version ranges the backend is tested with (TESTED, a pip constraints file). Cancel stops the
running subprocess; an install started again reuses what is there (pip skips what is installed), so a cancelled or
broken install is repaired by installing again. Nothing is written outside the extension's folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TORCH = "torch>=2.1,<2.14"
# the versions the backend is tested with (Python 3.11; numpy 2 only where 1.26 has no wheels: Python 3.13+)
TESTED = ("numpy>=1.26,<2; python_version < '3.13'", "numpy>=2.1,<3; python_version >= '3.13'", "scipy>=1.10,<1.18",
          "pillow>=10,<14", "av>=12,<19", "dlib-bin>=19.24,<21", "face-recognition-models>=0.3,<0.4", TORCH)
EXTRAS = "dlib,video"  # offline 68-point landmarks and clip reading, both with wheels for the main platforms
# torch builds: PyTorch's CPU or CUDA index beside PyPI, or PyPI's own default (CUDA on Linux x86, CPU elsewhere)
TORCH_INDEX = {"cpu": "https://download.pytorch.org/whl/cpu", "cuda": "https://download.pytorch.org/whl/cu124",
               "pypi": ""}
# wheels only, so nothing is compiled half-way; face-recognition-models (dlib's model files, no code to build) has
# only a source release from 0.3 on
WHEELS_ONLY = ["--only-binary", ":all:", "--no-binary", "face-recognition-models"]
VERIFY = ("import json, torch, backend; print(json.dumps({'mlaface': backend.__version__, "
          "'torch': torch.__version__, 'cuda': torch.cuda.is_available()}))")


# what the add-on keeps in its user folder, and nothing else
ENV_FOLDER, MODEL_FILE, LOG_FILE, STATE_FILE, CONSTRAINTS_FILE = (
    "backend-env", "face-model.npz", "install.log", "install.json", "constraints.txt")


def env_python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def folder_python(folder: Path) -> Path:
    """The private environment's interpreter under the extension's user folder."""
    return env_python(folder / ENV_FOLDER)


def bundled_wheel(extension: Path) -> Path | None:
    """The mlaface wheel build_addon.py put in the extension (wheels/mlaface-*.whl), newest first."""
    wheels = sorted((extension / "wheels").glob("mlaface-*.whl"))
    return wheels[-1] if wheels else None


def torch_build(choice: str) -> str:
    """cpu, cuda or pypi: the user's choice, or cuda where nvidia-smi is found (auto)."""
    if choice != "auto":
        return choice
    return "cuda" if shutil.which("nvidia-smi") else "cpu"


def venv_problem(python: str) -> str | None:
    """Why this Python cannot make the environment (no venv or ensurepip), or None."""
    if not python or not Path(python).is_file():
        return f"Python not found: {python!r}"
    r = subprocess.run([python, "-c", "import venv, ensurepip"], capture_output=True, text=True)
    if r.returncode:
        return (f"{python} cannot make a virtual environment (no venv/ensurepip): install Python 3.11 or newer "
                f"from python.org and choose it as 'Python for the environment'")
    return None


@dataclass
class Plan:
    """What to install where. source: a folder of wheels for an offline install (pip --no-index --find-links),
    or "" for the package index. reuse_site_packages: the environment sees the making Python's packages after
    its own (a Python that has torch already saves its download)."""

    base_python: str
    folder: Path  # the extension's user folder
    wheel: Path
    build: str = "cpu"
    source: str = ""
    reuse_site_packages: bool = False

    @property
    def env(self) -> Path:
        return self.folder / ENV_FOLDER

    def pip_source(self) -> list[str]:
        return ["--no-index", "--find-links", self.source] if self.source else []

    def torch_args(self) -> list[str]:
        index = "" if self.source else TORCH_INDEX[self.build]
        return [TORCH, *(["--extra-index-url", index] if index else [])]

    def mlaface_args(self) -> list[str]:
        return [f"mlaface[{EXTRAS}] @ {self.wheel.resolve().as_uri()}"]


@dataclass
class Progress:
    stage: str = "idle"
    package: str = ""
    percent: int = 0
    running: bool = False
    ok: bool | None = None
    message: str = ""


_PACKAGE = re.compile(r"^(?:Collecting|Downloading|Requirement already satisfied:|Processing)\s+(\S+)")


def read_state(folder: Path) -> dict:
    """install.json: {"ok": bool, "mlaface", "torch", "cuda", "error", "finished"}; {} where none was made."""
    try:
        return json.loads((folder / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


class Installer:
    """One install in a background thread; `progress` is read by the UI's timer, `cancel()` stops it."""

    def __init__(self, plan: Plan):
        self.plan, self.progress = plan, Progress()
        self._proc: subprocess.Popen | None = None
        self._cancelled = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    @property
    def log_path(self) -> Path:
        return self.plan.folder / LOG_FILE

    def start(self) -> Installer:
        self.plan.folder.mkdir(parents=True, exist_ok=True)
        self.progress.running = True
        self.thread.start()
        return self

    def cancel(self) -> None:
        self._cancelled = True
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()

    def _step(self, stage: str, args: list[str], log) -> str:
        """Run one subprocess of a stage, its output to the log and the progress; -> its output."""
        if self._cancelled:
            raise InterruptedError
        self.progress.stage, self.progress.package = stage, ""
        log.write(f"\n$ {' '.join(args)}\n")
        log.flush()
        out = []
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      cwd=self.plan.folder, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                                           "PYTHONNOUSERSITE": "1"})
        for line in self._proc.stdout:
            log.write(line)
            out.append(line)
            match = _PACKAGE.match(line.strip())
            if match:
                self.progress.package = match.group(1).split("/")[-1][:60]
        code = self._proc.wait()
        if self._cancelled:
            raise InterruptedError
        if code:
            raise RuntimeError(_pip_error(stage, "".join(out)))
        return "".join(out)

    def _run(self) -> None:
        plan, started = self.plan, time.time()
        state = {"ok": False}
        try:
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"=== mlaface backend install {time.strftime('%Y-%m-%d %H:%M:%S')} into {plan.env}\n")
                python = env_python(plan.env)
                if not _works(python):  # make (or remake) the environment; an existing good one is kept
                    problem = venv_problem(plan.base_python)
                    if problem:
                        raise RuntimeError(problem)
                    self._step("environment", [plan.base_python, "-m", "venv", "--clear", str(plan.env)], log)
                    if plan.reuse_site_packages:
                        _reuse_packages(plan.base_python, python)
                self.progress.percent = 5
                constraints = plan.folder / CONSTRAINTS_FILE
                constraints.write_text("\n".join(TESTED) + "\n")
                pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-c", str(constraints),
                       *plan.pip_source()]
                self._step("check", [*pip, "--dry-run", *WHEELS_ONLY, *plan.torch_args(),
                                     *plan.mlaface_args()], log)
                self.progress.percent = 15
                self._step("torch", [*pip, *WHEELS_ONLY, *plan.torch_args()], log)
                self.progress.percent = 60
                self._step("mlaface", [*pip, *WHEELS_ONLY, *plan.mlaface_args()], log)
                self._step("mlaface", [*pip, "--force-reinstall", "--no-deps", *plan.mlaface_args()], log)
                self.progress.percent = 95
                versions = json.loads(self._step("verify", [str(python), "-c", VERIFY], log).splitlines()[-1])
                state = {"ok": True, **versions}
                self.progress.ok, self.progress.message = True, (
                    f"ready: mlaface {versions['mlaface']}, torch {versions['torch']}, "
                    f"{'CUDA' if versions['cuda'] else 'CPU'} ({time.time() - started:.0f} s)")
        except InterruptedError:
            state = {"ok": False, "error": "cancelled; Install Backend again repairs it"}
            self.progress.ok, self.progress.message = False, state["error"]
        except (RuntimeError, OSError, ValueError) as e:
            state = {"ok": False, "error": str(e)}
            self.progress.ok, self.progress.message = False, str(e)
        finally:
            state["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
            (plan.folder / STATE_FILE).write_text(json.dumps(state))
            self.progress.percent = 100 if state["ok"] else self.progress.percent
            self.progress.running = False


REUSE_PTH = "mlaface-reuse.pth"
_SITE = "import sysconfig; p = sysconfig.get_paths(); print(p['purelib']); print(p['platlib'])"


def _reuse_packages(base_python: str, python: Path) -> None:
    """Let the environment see the making Python's own packages (after its own): a .pth file naming that
    Python's site-packages. Unlike venv's --system-site-packages this works when that Python is itself a virtual
    environment."""
    theirs = subprocess.run([base_python, "-c", _SITE], capture_output=True, text=True, check=True).stdout.split()
    ours = subprocess.run([str(python), "-c", _SITE], capture_output=True, text=True, check=True).stdout.split()
    (Path(ours[0]) / REUSE_PTH).write_text("\n".join(dict.fromkeys(theirs)) + "\n")
    # venv's own setuptools (Python 3.11 adds one) would hide that Python's, which torch may need newer
    subprocess.run([str(python), "-m", "pip", "uninstall", "-y", "-q", "setuptools"], capture_output=True)


def _works(python: Path) -> bool:
    if not python.is_file():
        return False
    return subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True).returncode == 0


def _pip_error(stage: str, output: str) -> str:
    """A failed stage's message: the packages pip found no wheel for, or its last lines."""
    missing = re.findall(r"No matching distribution found for (\S+)", output)
    if missing:
        return (f"{stage}: no wheel for the environment's Python and this platform: "
                f"{', '.join(dict.fromkeys(missing))}; nothing was installed")
    tail = [ln for ln in output.strip().splitlines() if ln.strip()][-3:]
    return f"{stage} failed: " + " / ".join(tail)


def run_backend(python: Path, args: list[str], log: Path) -> subprocess.Popen:
    """`python -m backend ARGS` (the face model's install) with its output appended to log."""
    with open(log, "a", encoding="utf-8") as handle:  # the child keeps its own copy of the file
        handle.write(f"\n$ {python} -m backend {' '.join(args)}\n")
        handle.flush()
        return subprocess.Popen([str(python), "-m", "backend", *args], stdout=handle, stderr=subprocess.STDOUT,
                                cwd=log.parent, env={**os.environ, "PYTHONNOUSERSITE": "1"})


def uninstall(folder: Path) -> list[str]:
    """Remove the environment, the face model and the install's files; -> what was removed."""
    removed = []
    for name in (ENV_FOLDER, MODEL_FILE, STATE_FILE, LOG_FILE, CONSTRAINTS_FILE):
        path = folder / name
        if path.is_dir():
            shutil.rmtree(path)
            removed.append(name)
        elif path.exists():
            path.unlink()
            removed.append(name)
    return removed
