"""Label mapping onto Pascal-Person-Part, tested on constructed label maps."""

import numpy as np
import pytest

from builder.parsing.label_mapping import PartMapper, UnknownLabelsError

ATR = dict(
    enumerate(
        [
            "Background",
            "Hat",
            "Hair",
            "Sunglasses",
            "Upper-clothes",
            "Skirt",
            "Pants",
            "Dress",
            "Belt",
            "Left-shoe",
            "Right-shoe",
            "Face",
            "Left-leg",
            "Right-leg",
            "Left-arm",
            "Right-arm",
            "Bag",
            "Scarf",
        ]
    )
)
L = {name: i for i, name in ATR.items()}


def test_pascal_person_part_labels_map_one_to_one():
    mapper = PartMapper(
        {0: "background", 1: "head", 2: "torso", 3: "upper arms", 4: "lower arms", 5: "upper legs", 6: "lower legs"}
    )
    labels = np.arange(7).repeat(3).reshape(7, 3)
    np.testing.assert_array_equal(mapper(labels), labels)


def atr_person():
    """A 40x20 person in ATR labels: hat+face, shirt with sleeves beside the hips, bare forearms,
    pants from row 20 to 33, shoes below, and a bag."""
    m = np.full((40, 20), L["Background"])
    m[0:2, 7:13] = L["Hat"]
    m[2:6, 7:13] = L["Face"]
    m[6:20, 5:15] = L["Upper-clothes"]  # columns 5-6 and 13-14 are sleeves (outside hips 7..12)
    m[14:20, 3:5] = L["Right-arm"]  # forearms, image left
    m[14:20, 15:17] = L["Left-arm"]
    m[20:34, 7:13] = L["Pants"]
    m[34:36, 7:10] = L["Left-shoe"]
    m[34:36, 10:13] = L["Right-shoe"]
    m[25:30, 0:2] = L["Bag"]
    return m


def test_atr_clothes_parser_splits_limbs_at_elbow_and_knee():
    parts = PartMapper(ATR)(atr_person())
    assert (parts[0:6, 7:13] == 1).all()  # hat + face = head
    assert (parts[6:20, 7:13] == 2).all()  # shirt between the hip columns = torso
    # Legs: hips at row 20, feet end at row 36 -> knee at row 28.
    assert (parts[20:28, 7:13] == 5).all() and (parts[28:34, 7:13] == 6).all()
    assert (parts[34:36, 7:13] == 6).all()  # shoes are lower legs
    # Arms: shoulder row 6, lowest arm pixel row 19 -> elbow at row 13.
    for cols in (slice(3, 7), slice(13, 17)):
        arm = parts[6:20, cols]
        assert set(np.unique(arm[0:7])) <= {0, 3}  # rows 6..12 upper arm (sleeve)
        assert set(np.unique(arm[7:14])) <= {0, 4}  # rows 13..19 lower arm (sleeve + skin)
    for sleeve in (slice(5, 7), slice(13, 15)):  # sleeve columns are arms, not torso
        assert set(np.unique(parts[6:20, sleeve])) == {3, 4}
    assert (parts[25:30, 0:2] == 0).all()  # bag is not on the body


def test_atr_without_legs_keeps_clothes_as_torso():
    m = np.zeros((10, 10), dtype=int)
    m[2:8, 2:8] = L["Upper-clothes"]
    m[3:8, 0:2] = L["Left-arm"]
    parts = PartMapper(ATR)(m)
    assert (parts[2:8, 2:8] == 2).all()
    assert set(np.unique(parts[3:8, 0:2])) == {3, 4}


def test_unknown_labels_are_named():
    with pytest.raises(UnknownLabelsError, match=r"\['wing'\]"):
        PartMapper({0: "background", 1: "head", 2: "wing"})
