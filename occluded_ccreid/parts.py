"""The Pascal-Person-Part vocabulary that part maps and `occluded_part` use.

Value 0 is background in a part map and "none" (not occluded) in `occluded_part`;
1..6 are the six body parts in the order of the paper's Algorithm 1.
"""

from __future__ import annotations

PART_NAMES: tuple[str, ...] = (
    "none",
    "head",
    "torso",
    "upper_arms",
    "lower_arms",
    "upper_legs",
    "lower_legs",
)
NONE = 0
BODY_PARTS: tuple[int, ...] = tuple(range(1, len(PART_NAMES)))  # 1..6
PART_IDS: dict[str, int] = {name: i for i, name in enumerate(PART_NAMES)}
# RGB colour of each part value: the Pascal VOC colour map that SCHP's tools draw Pascal-Person-Part
# maps with (background black, head dark red, torso green, ...). Built `parsing` PNGs carry it as
# their palette, so viewers show the parts in colour while np.asarray still gives the values 0..6.
PART_PALETTE: tuple[tuple[int, int, int], ...] = (
    (0, 0, 0),
    (128, 0, 0),
    (0, 128, 0),
    (128, 128, 0),
    (0, 0, 128),
    (128, 0, 128),
    (0, 128, 128),
)


def part_name(part_id: int) -> str:
    """Name of a part id (0 is "none")."""
    return PART_NAMES[part_id]
