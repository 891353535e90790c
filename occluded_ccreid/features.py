"""The declared `datasets.Features` of an occluded CC-ReID dataset: one place for the schema."""

from __future__ import annotations

from datasets import ClassLabel, Features, Image, Value

from .parts import PART_NAMES

# Column order is the order rows are written in and the order users see.
CORE_COLUMNS: dict[str, object] = {
    "image": Image(),  # the occluded image
    "pid": Value("int32"),  # identity as numbered by the source dataset
    "camid": Value("int32"),  # 0-based camera index, as the CAL / Simple-CCReID loaders read it
    "clothes_id": Value("int32"),  # unique per (pid, outfit) across the whole dataset
    "occluded_part": ClassLabel(names=list(PART_NAMES)),
    "pool_scale": Value("int32"),  # kernel size of the average pooling; 0 when not occluded
    "occluded_ratio": Value("float32"),  # share of the person's pixels under the occluder
    "occlusion_mask": Image(),  # binary occluder, 0 or 255, same size as the image
    "parsing": Image(),  # part map used, pixel value 0..6 (see occluded_ccreid.parts)
    "source_path": Value("string"),  # path of the original image relative to the source root
}


def dataset_features(extra: dict[str, object] | None = None) -> Features:
    """Features of a built dataset; `extra` columns (build options that add columns) go last."""
    return Features({**CORE_COLUMNS, **(extra or {})})
