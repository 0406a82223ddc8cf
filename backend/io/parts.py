"""Material roles: what each material of the head is, in one table. The model conversion (model/facekit.py) gives
every material a role and stores it in the model file and every FaceResult (`material_roles`), so nothing after
the conversion looks at material names. Standard library only.

A role's part is the coarser kind stored beside it as `material_parts` (older readers and the exporters' choice of
what to write); its colour is the linear-RGB albedo an untextured material gets (Blender, glTF, OBJ and the head
renderer alike); opacity below 1 makes it see-through; `occludes`: it hides the skin behind it when the photo is
unwrapped into the texture; `exported`: written to OBJ, glTF and Blender (the see-through eye layers are not, so
that skin reads opaque in any renderer).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Role:
    part: str
    colour: tuple[float, float, float]
    opacity: float = 1.0
    occludes: bool = True
    exported: bool = True


SKIN = (0.8, 0.62, 0.52)
ROLES = {
    "face": Role("skin", SKIN),  # the face skin: the photo's texture tile
    "head": Role("skin", SKIN),  # scalp, ears, neck
    "mouth": Role("mouth", (0.22, 0.05, 0.05)),  # gums, tongue, mouth socket
    "teeth": Role("teeth", (0.60, 0.55, 0.45)),
    "sclera": Role("eye", (0.55, 0.50, 0.45)),
    "iris": Role("eye", (0.10, 0.06, 0.03)),
    "pupil": Role("eye", (0.01, 0.01, 0.01)),
    "cornea": Role("eye_helper", (1.0, 1.0, 1.0), 0.0, False, False),  # the clear front of the eyeball
    "eye_helper": Role("eye_helper", (1.0, 1.0, 1.0), 0.0, False, False),  # tear film, occlusion shadow
    # ICT's lash cards are untextured: solid, they are a dark band around the eye; faint, they keep the lashes'
    # place for an artist's lash texture
    "eyelashes": Role("eyelashes", (0.05, 0.04, 0.04), 0.15, False),
    "other": Role("other", (0.5, 0.5, 0.5), occludes=False, exported=False),
}
PARTS = tuple(dict.fromkeys(r.part for r in ROLES.values()))
EYE_ROLES = ("sclera", "iris", "pupil")

# ICT-FaceKit's material names (with the eyeball split of model/facekit.py). Read by the conversion, and by the
# readers of files written before roles were stored, nowhere else.
ICT_MATERIAL_ROLES = {
    "M_Face": "face", "M_BackHead": "head", "M_GumsTongue": "mouth", "M_Teeth": "teeth",
    "M_ScleraLeft": "sclera", "M_ScleraRight": "sclera", "M_IrisLeft": "iris", "M_IrisRight": "iris",
    "M_PupilLeft": "pupil", "M_PupilRight": "pupil", "M_CorneaLeft": "cornea", "M_CorneaRight": "cornea",
    "M_LacrimalFluid": "eye_helper", "M_EyeBlend": "eye_helper", "M_EyeOcclusion": "eye_helper",
    "M_EyeLashes": "eyelashes",
}


def ict_roles(material_names) -> list[str]:
    """The role of each ICT-FaceKit material name ("other" for names it does not have)."""
    return [ICT_MATERIAL_ROLES.get(str(n), "other") for n in material_names]


def parts_of(roles) -> list[str]:
    return [ROLES[str(r)].part for r in roles]


def roles_problem(roles, names) -> str | None:
    """What is wrong with a file's material roles for its material names, or None."""
    if len(roles) != len(names) or not set(map(str, roles)) <= set(ROLES):
        return "material roles do not match the materials"
    return None
