"""ARKit's 52 blendshape names and matching a rig's shape-key names to them.

Rigs spell the same shape many ways: `eyeBlinkLeft` (ARKit), `EyeBlinkLeft` (Live Link Face), `eyeBlink_L`,
`eyeBlink.L`, `eye_blink_left`, `EYE_BLINK_L`, `L_eyeBlink`, behind a prefix (`Blendshape.eyeBlinkLeft`,
`head_geo:eyeBlinkLeft`, `CC_Base|eyeBlink_L`). `name_key` reduces every spelling to one key, (base, side): the
words of the name in lower case without the side, and "Left", "Right" or "". Two names mean the same shape when
their keys are equal.

The vocabulary is ARKit's 52 shapes plus the halves ICT-FaceKit (mlaface's face model) splits two of them into:
browInnerUpLeft / Right and cheekPuffLeft / Right. A name outside it is never matched: unmatched names are
reported, not guessed.
"""

from __future__ import annotations

import re

# ARKit's blendshapes in ARKit's order (the order of Live Link Face's CSV columns), in ARKit's own spelling.
ARKIT_SHAPES = (
    "eyeBlinkLeft", "eyeLookDownLeft", "eyeLookInLeft", "eyeLookOutLeft", "eyeLookUpLeft", "eyeSquintLeft",
    "eyeWideLeft", "eyeBlinkRight", "eyeLookDownRight", "eyeLookInRight", "eyeLookOutRight", "eyeLookUpRight",
    "eyeSquintRight", "eyeWideRight", "jawForward", "jawRight", "jawLeft", "jawOpen", "mouthClose", "mouthFunnel",
    "mouthPucker", "mouthRight", "mouthLeft", "mouthSmileLeft", "mouthSmileRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthDimpleLeft", "mouthDimpleRight", "mouthStretchLeft", "mouthStretchRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPressLeft", "mouthPressRight",
    "mouthLowerDownLeft", "mouthLowerDownRight", "mouthUpperUpLeft", "mouthUpperUpRight", "browDownLeft",
    "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff", "cheekSquintLeft",
    "cheekSquintRight", "noseSneerLeft", "noseSneerRight", "tongueOut",
)
# ARKit shapes with no side that some rigs (and ICT-FaceKit) split into a left and a right half.
SPLIT_SHAPES = ("browInnerUp", "cheekPuff")
SIDES = ("Left", "Right")
VOCABULARY = ARKIT_SHAPES + tuple(shape + side for shape in SPLIT_SHAPES for side in SIDES)

_PREFIX = re.compile(r"[.:|/]")  # namespace and prefix separators: 'Blendshape.', 'ns:', 'CC_Base|', 'a/b'
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
_SIDE_WORDS = {"l": "Left", "left": "Left", "r": "Right", "right": "Right"}


def name_key(name: str) -> tuple[str, str]:
    """Any spelling of a shape's name -> (base, side): ('eyeblink', 'Left') for eyeBlinkLeft, eyeBlink_L,
    eyeBlink.L, eye_blink_left, Blendshape.EyeBlinkLeft; ('jawopen', '') for jawOpen. A side word is taken from
    the end of the name, else from its start (L_eyeBlink)."""
    parts = [p for p in _PREFIX.split(name.strip()) if p]
    if not parts:
        return ("", "")
    if len(parts) > 1 and parts[-1].lower() in _SIDE_WORDS:  # Blender's .L / .R suffix, not a prefix
        parts = [parts[-2] + "_" + parts[-1]]
    words = [w.lower() for w in _WORDS.findall(parts[-1])]
    side = ""
    if len(words) > 1 and words[-1] in _SIDE_WORDS:
        side = _SIDE_WORDS[words.pop()]
    elif len(words) > 1 and words[0] in _SIDE_WORDS:
        side = _SIDE_WORDS[words.pop(0)]
    return ("".join(words), side)


_BY_KEY = {name_key(name): name for name in VOCABULARY}


def arkit_name(name: str) -> str | None:
    """A rig's shape-key name -> the vocabulary's spelling of the same shape (eye_blink_L -> eyeBlinkLeft,
    BrowInnerUp_R -> browInnerUpRight), or None where the name is no ARKit shape."""
    return _BY_KEY.get(name_key(name))


def split_whole(name: str) -> str | None:
    """browInnerUpLeft -> browInnerUp (a half's whole ARKit shape); None for every other name."""
    for shape in SPLIT_SHAPES:
        if name in (shape + side for side in SIDES):
            return shape
    return None
