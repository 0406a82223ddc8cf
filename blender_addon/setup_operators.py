"""Setting the add-on up without a terminal: Install Backend (the private environment, backend_env.py), Cancel,
Download Face Model / Install from File (the backend's `model install` in that environment), Open Install Log,
Uninstall. From the UI they run in the background with progress in the status bar and the preferences (Esc or
Cancel stops them); from a script they block. Going online is asked of Blender's "Allow Online Access" first."""

from __future__ import annotations

import sys
import time

import bpy
from bpy.props import BoolProperty, StringProperty

from . import session
from .backend_env import LOG_FILE, MODEL_FILE, Installer, Plan, bundled_wheel, run_backend, torch_build, uninstall
from .preferences import preferences

OFFLINE = ("Blender is set to work offline (Preferences > System > Network > Allow Online Access), so nothing was "
           "downloaded. Allow online access, or install from a Package folder, or choose a Python with mlaface "
           "installed under Advanced")


class SetupError(Exception):
    pass


class ModelJob:
    """The backend's `model install` running in the environment, as the Installer's progress reads."""

    def __init__(self, python, args: list[str]):
        self.log = session.user_folder() / LOG_FILE
        self.proc = run_backend(python, args, self.log)
        self.started = time.time()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return f"installing the face model ({time.time() - self.started:.0f} s)"

    def cancel(self) -> None:
        self.proc.terminate()

    def wait(self) -> None:
        self.proc.wait()

    def result(self) -> tuple[bool, str]:
        if self.proc.returncode == 0:
            return True, "face model installed"
        lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
        return False, "face model not installed: " + (lines[-1] if lines else f"exit {self.proc.returncode}")


class InstallJob:
    def __init__(self, installer: Installer):
        self.installer = installer

    @property
    def running(self) -> bool:
        return self.installer.progress.running

    def text(self) -> str:
        p = self.installer.progress
        return f"installing the backend: {p.percent}% {p.stage} {p.package}"

    def cancel(self) -> None:
        self.installer.cancel()

    def wait(self) -> None:
        self.installer.thread.join()

    def result(self) -> tuple[bool, str]:
        return bool(self.installer.progress.ok), self.installer.progress.message


class SetupOperator:
    """Runs a job: modal with a timer from the UI, blocking from a script."""

    interactive: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    def begin(self, context):
        raise NotImplementedError

    def execute(self, context):
        try:
            self._job = self.begin(context)
        except SetupError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        if not self.interactive:
            self._job.wait()
            return self._finish(context)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.5, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._job.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        context.workspace.status_text_set(f"mlaface: {self._job.text()}; Esc cancels")
        for area in context.screen.areas if context.screen else ():
            area.tag_redraw()
        if self._job.running:
            return {"RUNNING_MODAL"}
        context.window_manager.event_timer_remove(self._timer)
        context.workspace.status_text_set(None)
        return self._finish(context)

    def _finish(self, context):
        ok, message = self._job.result()
        self.report({"INFO"} if ok else {"ERROR"}, f"mlaface: {message}")
        return {"FINISHED"} if ok else {"CANCELLED"}

    def invoke(self, context, event):
        self.interactive = True
        return self.execute(context)


class MLAFACE_OT_install_backend(SetupOperator, bpy.types.Operator):
    """Install (or repair) the backend in the add-on's own Python environment: PyTorch, mlaface's wheel in this
    extension and its dependencies"""

    bl_idname = "mlaface.install_backend"
    bl_label = "Install Backend"

    def begin(self, context):
        prefs = preferences(context)
        if session.installing():
            raise SetupError("an install is already running")
        wheel = bundled_wheel(session.extension_folder())
        if wheel is None:
            raise SetupError("this extension holds no mlaface wheel (wheels/): build it with build_addon.py")
        source = bpy.path.abspath(prefs.package_source) if prefs.package_source else ""
        if not source and not bpy.app.online_access:
            raise SetupError(OFFLINE)
        session.stop()  # the worker may run from the environment being changed
        plan = Plan(prefs.base_python or sys.executable, session.user_folder(), wheel, torch_build(prefs.torch_build),
                    source, prefs.reuse_site_packages)
        session.INSTALL["installer"] = installer = Installer(plan).start()
        return InstallJob(installer)


class MLAFACE_OT_cancel_install(bpy.types.Operator):
    """Stop the install; Install Backend again repairs what it left"""

    bl_idname = "mlaface.cancel_install"
    bl_label = "Cancel"

    def execute(self, context):
        running = session.installing()
        if running is not None:
            running.cancel()
        return {"FINISHED"}


class ModelOperator(SetupOperator):
    def model_args(self, context) -> list[str]:
        raise NotImplementedError

    def begin(self, context):
        prefs = preferences(context)
        if not session.backend_state(prefs)[0]:
            raise SetupError("install the backend first (Install Backend)")
        session.stop()
        return ModelJob(session.worker_python(prefs), ["model", "install", *self.model_args(context),
                                                       "-o", str(session.user_folder() / MODEL_FILE)])


class MLAFACE_OT_download_model(ModelOperator, bpy.types.Operator):
    """Download ICT-FaceKit (MIT licence) at its pinned commit, check its digest and install it for the add-on"""

    bl_idname = "mlaface.download_model"
    bl_label = "Download Face Model"

    def model_args(self, context) -> list[str]:
        if not bpy.app.online_access:
            raise SetupError(OFFLINE)
        return ["--download"]


class MLAFACE_OT_install_model_file(ModelOperator, bpy.types.Operator):
    """Install the face model from a local ICT-FaceKit archive or folder"""

    bl_idname = "mlaface.install_model_file"
    bl_label = "Install from File..."
    filepath: StringProperty(subtype="FILE_PATH")

    def model_args(self, context) -> list[str]:
        if not self.filepath:
            raise SetupError("choose the ICT-FaceKit archive (FaceXModel.tar.xz) or its folder")
        return ["--from", bpy.path.abspath(self.filepath)]

    def invoke(self, context, event):
        self.interactive = True
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class MLAFACE_OT_open_install_log(bpy.types.Operator):
    """Open the install log"""

    bl_idname = "mlaface.open_install_log"
    bl_label = "Open Log"

    def execute(self, context):
        log = session.user_folder() / LOG_FILE
        if not log.is_file():
            self.report({"WARNING"}, "nothing was installed yet: no log")
            return {"CANCELLED"}
        bpy.ops.wm.path_open(filepath=str(log))
        return {"FINISHED"}


class MLAFACE_OT_uninstall_backend(bpy.types.Operator):
    """Remove the add-on's backend environment and face model (nothing else: your scenes and files stay)"""

    bl_idname = "mlaface.uninstall_backend"
    bl_label = "Uninstall"

    def execute(self, context):
        if session.installing():
            self.report({"ERROR"}, "an install is running: cancel it first")
            return {"CANCELLED"}
        session.stop()
        removed = uninstall(session.user_folder())
        self.report({"INFO"}, f"mlaface: removed {', '.join(removed) or 'nothing (nothing was installed)'}")
        return {"FINISHED"}

    def invoke(self, context, event):
        return context.window_manager.invoke_confirm(self, event)


classes = (MLAFACE_OT_install_backend, MLAFACE_OT_cancel_install, MLAFACE_OT_download_model,
           MLAFACE_OT_install_model_file, MLAFACE_OT_open_install_log, MLAFACE_OT_uninstall_backend)
