"""Map a segmentation model's labels onto the six Pascal-Person-Part parts.

Two kinds of checkpoints are understood, by the label names in `model.config.id2label`:

* Pascal-Person-Part models (head, torso, upper/lower arms, upper/lower legs): mapped one to one.
* ATR / LIP style clothes parsers (hat, hair, face, upper-clothes, pants, left-arm, left-shoe, ...),
  such as the SegFormer `*_clothes` checkpoints. These have no upper/lower split, so:
    - head   = hat, hair, sunglasses, face, neck
    - torso  = upper-clothes, coat, dress, jumpsuits, scarf, belt
    - arms   = left/right arm (skin), plus sleeves: upper-clothes/coat pixels that lie outside
      the hip columns (the column span of the top rows of the legs), since a hanging arm sits
      beside the body; gloves are always lower arms.
      Each side of the body (left/right of the hip centre) is split at its elbow row, taken
      halfway between the shoulder row (top of the torso) and the lowest arm pixel of that side.
    - legs   = left/right leg (skin), pants, skirt, split at the knee row halfway between the top
      of the leg region (the hips) and its lowest pixel including shoes; shoes and socks are
      always lower legs.
    - background = background and anything not on the body (bag, umbrella, ...).
Unknown label names are an error naming them, so a new checkpoint is never mapped silently wrong.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from occluded_ccreid.parts import PART_IDS

# Roles that map straight to a part id.
BACKGROUND, HEAD, TORSO = "none", "head", "torso"
UPPER_ARMS, LOWER_ARMS, UPPER_LEGS, LOWER_LEGS = "upper_arms", "lower_arms", "upper_legs", "lower_legs"
# Roles that need the geometric split.
ARM_LEFT, ARM_RIGHT, ARM = "arm_left", "arm_right", "arm"
LEG, CLOTHES_TOP = "leg", "clothes_top"

_ROLE_BY_NAME: dict[str, str] = {
    # Pascal-Person-Part names and their common spellings.
    "background": BACKGROUND,
    "bg": BACKGROUND,
    "head": HEAD,
    "torso": TORSO,
    "upperarm": UPPER_ARMS,
    "upperarms": UPPER_ARMS,
    "uarm": UPPER_ARMS,
    "uarms": UPPER_ARMS,
    "lowerarm": LOWER_ARMS,
    "lowerarms": LOWER_ARMS,
    "larm": LOWER_ARMS,
    "larms": LOWER_ARMS,
    "upperleg": UPPER_LEGS,
    "upperlegs": UPPER_LEGS,
    "uleg": UPPER_LEGS,
    "ulegs": UPPER_LEGS,
    "lowerleg": LOWER_LEGS,
    "lowerlegs": LOWER_LEGS,
    "lleg": LOWER_LEGS,
    "llegs": LOWER_LEGS,
    # ATR / LIP / CIHP names.
    "hat": HEAD,
    "hair": HEAD,
    "sunglasses": HEAD,
    "face": HEAD,
    "neck": HEAD,
    "upperclothes": CLOTHES_TOP,
    "coat": CLOTHES_TOP,
    "dress": TORSO,
    "jumpsuits": TORSO,
    "jumpsuit": TORSO,
    "scarf": TORSO,
    "belt": TORSO,
    "leftarm": ARM_LEFT,
    "rightarm": ARM_RIGHT,
    "arm": ARM,
    "arms": ARM,
    "glove": LOWER_ARMS,
    "gloves": LOWER_ARMS,
    "pants": LEG,
    "skirt": LEG,
    "leftleg": LEG,
    "rightleg": LEG,
    "leg": LEG,
    "legs": LEG,
    "leftshoe": LOWER_LEGS,
    "rightshoe": LOWER_LEGS,
    "shoe": LOWER_LEGS,
    "shoes": LOWER_LEGS,
    "socks": LOWER_LEGS,
    "sock": LOWER_LEGS,
    "bag": BACKGROUND,
    "umbrella": BACKGROUND,
}
_SPLIT_ROLES = {ARM_LEFT, ARM_RIGHT, ARM, LEG, CLOTHES_TOP}


class UnknownLabelsError(ValueError):
    pass


def normalise_label(name: str) -> str:
    return re.sub(r"[^a-z]", "", name.lower())


class PartMapper:
    """Turns a model's per-pixel label map into a Pascal-Person-Part map (uint8, 0..6)."""

    def __init__(self, id2label: Mapping[int | str, str]):
        roles: dict[int, str] = {}
        unknown = []
        for label_id, name in id2label.items():
            role = _ROLE_BY_NAME.get(normalise_label(name))
            if role is None:
                unknown.append(name)
            else:
                roles[int(label_id)] = role
        if unknown:
            raise UnknownLabelsError(
                f"the model's labels {unknown} are not known body parts; supported are "
                "Pascal-Person-Part labels (head, torso, upper/lower arms, upper/lower legs) and "
                "ATR/LIP clothes-parsing labels (see builder/parsing/label_mapping.py)"
            )
        self.roles = roles
        size = max(roles) + 1
        # role index per label id, so one fancy-indexing pass classifies every pixel
        self._role_names = sorted(set(roles.values()))
        self._role_table = np.zeros(size, dtype=np.uint8)
        for label_id, role in roles.items():
            self._role_table[label_id] = self._role_names.index(role)
        self.needs_split = any(role in _SPLIT_ROLES for role in roles.values())

    def __call__(self, labels: np.ndarray) -> np.ndarray:
        role_map = self._role_table[labels]
        parts = np.zeros(labels.shape, dtype=np.uint8)
        masks = {role: role_map == i for i, role in enumerate(self._role_names)}
        for role, mask in masks.items():
            if role in PART_IDS:
                parts[mask] = PART_IDS[role]
        if self.needs_split:
            self._split_limbs(parts, masks)
        return parts

    def _split_limbs(self, parts: np.ndarray, masks: dict[str, np.ndarray]) -> None:
        empty = np.zeros(parts.shape, dtype=bool)
        legs = masks.get(LEG, empty)
        lower_legs = parts == PART_IDS[LOWER_LEGS]
        clothes_top = masks.get(CLOTHES_TOP, empty)
        arms = masks.get(ARM_LEFT, empty) | masks.get(ARM_RIGHT, empty) | masks.get(ARM, empty)

        # Legs: knee halfway between the hips (top of the leg region) and the feet.
        leg_rows = np.flatnonzero((legs | lower_legs).any(axis=1))
        hip_columns = None
        if leg_rows.size and legs.any():
            hip_row = np.flatnonzero(legs.any(axis=1))[0]
            knee = (hip_row + leg_rows[-1] + 1) / 2
            rows = np.arange(parts.shape[0])[:, None]
            parts[legs & (rows < knee)] = PART_IDS[UPPER_LEGS]
            parts[legs & (rows >= knee)] = PART_IDS[LOWER_LEGS]
            # Hip columns: the legs' column span over their top tenth of rows.
            band = legs[hip_row : hip_row + max(1, (leg_rows[-1] - hip_row + 1) // 10)]
            cols = np.flatnonzero(band.any(axis=0))
            hip_columns = (cols[0], cols[-1])

        # Sleeves: top clothes beside the hips belong to the arms; the rest is torso.
        sleeves = np.zeros(parts.shape, dtype=bool)
        if hip_columns is not None:
            cols = np.arange(parts.shape[1])[None, :]
            sleeves = clothes_top & ((cols < hip_columns[0]) | (cols > hip_columns[1]))
        parts[clothes_top & ~sleeves] = PART_IDS[TORSO]
        arms = arms | sleeves
        if not arms.any():
            return
        torso_rows = np.flatnonzero((clothes_top | (parts == PART_IDS[TORSO])).any(axis=1))
        arm_rows_all = np.flatnonzero(arms.any(axis=1))
        shoulder = torso_rows[0] if torso_rows.size else arm_rows_all[0]
        centre = (hip_columns[0] + hip_columns[1]) / 2 if hip_columns else parts.shape[1] / 2
        cols = np.arange(parts.shape[1])[None, :]
        rows = np.arange(parts.shape[0])[:, None]
        for side in (cols < centre, cols >= centre):
            side_arm = arms & side
            side_rows = np.flatnonzero(side_arm.any(axis=1))
            if not side_rows.size:
                continue
            elbow = (min(shoulder, side_rows[0]) + side_rows[-1] + 1) / 2
            parts[side_arm & (rows < elbow)] = PART_IDS[UPPER_ARMS]
            parts[side_arm & (rows >= elbow)] = PART_IDS[LOWER_ARMS]
