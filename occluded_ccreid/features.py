"""The declared `datasets.Features` of an occluded CC-ReID dataset: one place for the schema."""

from __future__ import annotations

from collections.abc import Mapping

from datasets import ClassLabel, Features, Image, List, Value

from .parts import PART_NAMES

# Column order is the order rows are written in and the order users see.
CORE_COLUMNS: dict[str, object] = {
    "image": Image(),  # the occluded image
    "pid": Value("int32"),  # identity as numbered by the source dataset
    "camid": Value("int32"),  # 0-based camera index, as the CAL / Simple-CCReID loaders read it
    "clothes_id": Value("int32"),  # unique per (pid, outfit) across the whole dataset
    "occluded_part": ClassLabel(names=list(PART_NAMES)),
    "pool_scale": Value("int32"),  # kernel size of the average pooling; 0 when not occluded
    # alpha-weighted share of the person's pixels under the occluder: sum of mask / 255 over the
    # part map's person pixels, divided by their count
    "occluded_ratio": Value("float32"),
    # "none", "parts" (the paper's), "rectangle-top|bottom|left|right", "person", "objects";
    # several occluders joined by "+" in draw order
    "occluder": Value("string"),
    "fill": Value("string"),  # how the occluders were fused: add (the paper's), white, black, ..., paste
    "coverage_in_band": Value("bool"),  # occluded_ratio inside the build's coverage band
    # per body part 1..6 (head .. lower_legs): 1 - the alpha-weighted share of the part's pixels
    # under the occluders; null where the part map has no pixel of the part
    "part_visibility": List(Value("float32")),
    # what was drawn, in draw order: kind name, part and pool scale (part occluders), and the
    # donor's source_path (person) or the object file relative to --objects-dir (objects)
    "occluders": List(
        {"occluder": Value("string"), "part": Value("int32"), "pool_scale": Value("int32"), "source": Value("string")}
    ),
    # `--occluder person`: the donor drawn for each occluder slot (whether or not the slot drew a person)
    "person_donors": List(Value("string")),
    # the occluder's alpha as drawn, 8-bit grey: 0 = pixel untouched (equal to the source) ..
    # 255 = fully occluded; soft edges in between; rectangles 0/255; same size as the image
    "occlusion_mask": Image(),
    "parsing": Image(),  # part map used, pixel value 0..6 (see occluded_ccreid.parts)
    "source_path": Value("string"),  # path of the original image relative to the source root
}


# Added by `builder build --keep-clean`: the original image, for paired training.
CLEAN_IMAGE_COLUMN = {"clean_image": Image()}


def dataset_features(keep_clean: bool = False, extra_columns: Mapping[str, str] | None = None) -> Features:
    """Features of a built dataset; `extra_columns` (name -> Value dtype) are the source's own
    columns (DeepChange's `tracklet_id`, a manifest's extra columns), after `source_path`."""
    extras = {name: Value(dtype) for name, dtype in (extra_columns or {}).items()}
    return Features({**CORE_COLUMNS, **extras, **(CLEAN_IMAGE_COLUMN if keep_clean else {})})
