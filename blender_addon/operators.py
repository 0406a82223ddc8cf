"""Operators: reconstruct one photo, several photos of one person, or a folder (batch), or animate a head from a
video, through the worker.

Run from the UI (invoke), they open a file browser, then run modal: a timer polls the worker, progress shows in
the status bar, Esc cancels (faces already finished are still imported). Run from a script (execute with the
path set), they block until done. Either way, errors are reported in Blender's UI and a failed import leaves
the scene as it was.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import bpy
from bpy.props import BoolProperty, CollectionProperty, FloatProperty, IntProperty, StringProperty

from . import session
from .backend.io.animation import read_track
from .backend.io.face_result import read_result
from .importer import import_animation, import_results
from .preferences import preferences
from .worker_client import WorkerError

FIT_QUALITY_WARNING = 0.5  # FaceResult metadata fit_quality.score below this is named in the report
IMAGE_FILTER = "*.jpg;*.jpeg;*.png;*.webp;*.tif;*.tiff;*.bmp;*.ppm"
VIDEO_FILTER = "*.mp4;*.mov;*.mkv;*.avi;*.webm;*.m4v"


class ReconstructBase:
    """Shared by the three operators: send one reconstruct request, gather events, import the results."""

    interactive: BoolProperty(default=False, options={"HIDDEN", "SKIP_SAVE"})

    def photos(self) -> list[str]:
        raise NotImplementedError

    same_person = False
    grid = False
    nothing = "no face was reconstructed"

    @classmethod
    def poll(cls, context):
        reason = session.readiness(preferences(context))
        if reason:
            cls.poll_message_set(reason)
        return reason is None

    def _start(self, context):
        photos = self.photos()
        if not photos:
            raise WorkerError("no photo chosen")
        prefs = preferences(context)
        self._client = session.worker(prefs)
        if not self._client.ready["ok"]:
            raise WorkerError(f"the worker is not ready: {self._client.ready['error']}")
        self._output = tempfile.mkdtemp(prefix="mlaface-")
        self._rid = self._send(prefs, photos)
        self._results, self._errors, self._done = [], [], None

    def _send(self, prefs, photos: list[str]) -> str:
        return self._client.send("reconstruct", photos=photos, output=self._output, options={
            "fit_steps": prefs.fit_steps, "texture_size": prefs.texture_size, "same_person": self.same_person,
            "all_faces": False, "formats": ["npz"]})

    def _import(self) -> str:
        """Build the results into the scene (all or nothing); -> what was imported, for the report."""
        results = [read_result(r["files"]["npz"]) for r in self._results]
        names = [Path(r.photo).stem + (f"_face{r.face_index}" if r.face_index else "") for r in results]
        collection = "mlaface " + (names[0] if len(names) == 1 else f"batch of {len(names)}")
        import_results(results, names, collection, with_camera=not self.grid, grid=self.grid)
        scores = sorted((r.meta.get("fit_quality", {}).get("score", 1.0), n) for r, n in zip(results, names,
                                                                                              strict=True))
        shaky = [f"{n} {q:.2f}" for q, n in scores if q < FIT_QUALITY_WARNING][:5]
        return f"{len(results)} face(s)" + (f"; least certain fits (fit quality): {', '.join(shaky)}" if shaky else "")

    def _handle(self, event: dict) -> None:
        if event["event"] == "result":
            self._results.append(event)
        elif event["event"] == "error":
            self._errors.append(event["message"])
        elif event["event"] == "done":
            self._done = event

    def _finish(self, context) -> set[str]:
        try:
            return self._import_and_report()
        finally:
            shutil.rmtree(self._output, ignore_errors=True)  # the results are in the .blend now

    def _import_and_report(self) -> set[str]:
        for message in self._errors:
            self.report({"WARNING"}, message)
        if not self._results:
            self.report({"ERROR"}, self.nothing + (f": {self._errors[0]}" if self._errors else ""))
            return {"CANCELLED"}
        try:
            what = self._import()
        except Exception as e:  # the importer removed what it made; report instead of a traceback in the UI
            self.report({"ERROR"}, f"import failed: {e}")
            return {"CANCELLED"}
        cancelled = " (cancelled; finished faces kept)" if self._done and self._done.get("cancelled") else ""
        self.report({"INFO"}, f"mlaface: imported {what}{cancelled}")
        return {"FINISHED"}

    def execute(self, context):
        try:
            self._start(context)
            if self.interactive:
                wm = context.window_manager
                self._timer = wm.event_timer_add(0.2, window=context.window)
                wm.progress_begin(0, 100)
                wm.modal_handler_add(self)
                return {"RUNNING_MODAL"}
            for event in self._client.wait(self._rid):
                self._handle(event)
        except WorkerError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        return self._finish(context)

    def modal(self, context, event):
        if event.type == "ESC":
            self._client.send("cancel", target=self._rid)
            context.workspace.status_text_set("mlaface: cancelling...")
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            for e in self._client.poll():
                if e.get("id") != self._rid:
                    continue
                self._handle(e)
                if e["event"] == "progress":
                    context.window_manager.progress_update(100 * e["done"] // max(1, e["total"]))
                    context.workspace.status_text_set(
                        f"mlaface: {e['done']}/{e['total']} {Path(e['photo']).name} ({e['stage']}); Esc cancels")
        except WorkerError as e:
            self._errors.append(f"the worker stopped: {e}")
            self._done = {"cancelled": True}
        if self._done is None:
            return {"RUNNING_MODAL"}
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)
        return self._finish(context)

    def invoke(self, context, event):
        self.interactive = True
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}


class MLAFACE_OT_reconstruct(ReconstructBase, bpy.types.Operator):
    """Reconstruct the face in a photo as a textured, posed head with ARKit shape keys and a matched camera"""

    bl_idname = "mlaface.reconstruct"
    bl_label = "Reconstruct Photo"
    bl_options = {"REGISTER", "UNDO"}
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default=IMAGE_FILTER, options={"HIDDEN"})

    def photos(self) -> list[str]:
        return [bpy.path.abspath(self.filepath)] if self.filepath else []


class MLAFACE_OT_reconstruct_same_person(ReconstructBase, bpy.types.Operator):
    """Reconstruct several photos of one person: one identity, an expression and pose per photo"""

    bl_idname = "mlaface.reconstruct_same_person"
    bl_label = "Same Person, Several Photos"
    bl_options = {"REGISTER", "UNDO"}
    directory: StringProperty(subtype="DIR_PATH")
    files: CollectionProperty(type=bpy.types.OperatorFileListElement)
    filter_glob: StringProperty(default=IMAGE_FILTER, options={"HIDDEN"})
    same_person = True

    def photos(self) -> list[str]:
        folder = bpy.path.abspath(self.directory)
        return [str(Path(folder) / f.name) for f in self.files if f.name]


class MLAFACE_OT_batch_import(ReconstructBase, bpy.types.Operator):
    """Reconstruct every photo in a folder; the heads go into one collection, laid out in a grid"""

    bl_idname = "mlaface.batch_import"
    bl_label = "Batch Import Folder"
    bl_options = {"REGISTER", "UNDO"}
    directory: StringProperty(subtype="DIR_PATH")
    grid = True

    def photos(self) -> list[str]:
        return [bpy.path.abspath(self.directory)] if self.directory else []


class MLAFACE_OT_animate_clip(ReconstructBase, bpy.types.Operator):
    """Animate a head from a video or numbered frames: one identity, ARKit shape-key and head keyframes on the
    timeline at the clip's frame rate, a matched camera with the clip as its background"""

    bl_idname = "mlaface.animate_clip"
    bl_label = "Animate from Video"
    bl_options = {"REGISTER", "UNDO"}
    filepath: StringProperty(subtype="FILE_PATH")
    filter_glob: StringProperty(default=VIDEO_FILTER, options={"HIDDEN"})
    smooth: FloatProperty(name="Smoothing", description="Temporal smoothing, 0 (off) to 1 (strong)", default=0.5,
                          min=0.0, max=1.0)
    step: IntProperty(name="Every N-th Frame", default=1, min=1)
    nothing = "the clip was not animated"

    def photos(self) -> list[str]:
        return [bpy.path.abspath(self.filepath)] if self.filepath else []

    def _send(self, prefs, photos: list[str]) -> str:
        return self._client.send("animate", clip=photos[0], output=self._output,
                                 options={"smooth": self.smooth, "step": self.step})

    def _import(self) -> str:
        files = self._results[0]["files"]
        head, track = read_result(files["npz"]), read_track(files["anim"])
        import_animation(head, track, Path(self._results[0]["clip"]).stem)
        return f"an animated head, {len(track.times)} frames at {track.fps:g} fps"


class MLAFACE_OT_check_worker(bpy.types.Operator):
    """Start the worker with the chosen Python and report its device, landmarks and network"""

    bl_idname = "mlaface.check_worker"
    bl_label = "Check Worker"

    def execute(self, context):
        try:
            session.stop()
            session.worker(preferences(context))
        except WorkerError as e:
            session.STATUS["text"] = f"worker failed: {e}"
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        self.report({"INFO"}, session.STATUS["text"])
        return {"FINISHED"}


classes = (MLAFACE_OT_reconstruct, MLAFACE_OT_reconstruct_same_person, MLAFACE_OT_batch_import,
           MLAFACE_OT_animate_clip, MLAFACE_OT_check_worker)
