"""Files and formats, torch-free (numpy, Pillow and the standard library): what the Blender add-on bundles and
reads. Errors, atomic writes, versioned npz records (FaceResult, AnimationTrack, the face model file), material
roles, OBJ, glTF, Live Link CSV, photos and colour encoding, the worker protocol."""
