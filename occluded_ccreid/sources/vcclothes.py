"""VC-Clothes (Wang et al., CVPRW 2020): 512 identities, 4 cameras, synthetic (GTA V) images.

Labels are read as the CAL / Simple-CCReID loader reads them from `<pid>-<camera>-<clothes>-<frame>`:
camid is the camera number minus one, and an outfit is the pair (pid, clothes number). CAL's
three settings are the dataset authors': all cameras; cameras 2 and 3, where people keep their
clothes; cameras 3 and 4, where they change them (both restricted settings use CAL's standard
evaluation on the cameras' images only).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from . import register_source
from .base import Entry, Protocol, SourceLayout, SourceRecord, files_under

_NAME = re.compile(r"^([0-9]+)-([0-9]+)-([0-9]+)-([0-9]+)\.[^/.]+$")  # ASCII digits: \d also matches "١"
_SPLIT_DIRS = {"train": "train", "query": "query", "gallery": "gallery"}


@register_source
class VCClothes(SourceLayout):
    name = "vcclothes"
    pretty_name = "VC-Clothes"
    splits = ("train", "query", "gallery")
    expected_layout = (
        "  SOURCE/train/<pid>-<camera>-<clothes>-<frame>.jpg\n"
        "  SOURCE/query/<pid>-<camera>-<clothes>-<frame>.jpg\n"
        "  SOURCE/gallery/<pid>-<camera>-<clothes>-<frame>.jpg\n"
        "  splits: train, query, gallery; cameras 1..4"
    )
    homepage = "https://wanfb.github.io/dataset.html"
    citation = """@inproceedings{wang2020when,
  title     = {When Person Re-identification Meets Changing Clothes},
  author    = {Wan, Fangbin and Wu, Yang and Qian, Xuelin and Chen, Yixiong and Fu, Yanwei},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition Workshops (CVPRW)},
  year      = {2020}
}"""
    protocols = (
        Protocol("general", "standard", description="all queries against the whole gallery (all four cameras)"),
        Protocol(
            "same_clothes",
            "standard",
            query_camids=(1, 2),
            gallery_camids=(1, 2),
            description="query and gallery images of cameras 2 and 3 only, where people wear the same clothes",
        ),
        Protocol(
            "cloth_changing",
            "standard",
            query_camids=(2, 3),
            gallery_camids=(2, 3),
            description="query and gallery images of cameras 3 and 4 only, where people change clothes",
        ),
    )
    notes = "`camid` is the camera number of the file name minus one (cameras 1..4 -> 0..3)."

    def required_dirs(self) -> Iterable[str]:
        return list(_SPLIT_DIRS.values())

    def split_files(self, root: Path, split: str) -> Iterable[Entry]:
        return files_under(root / _SPLIT_DIRS[split])

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        parts = source_path.split("/")
        match = _NAME.match(parts[-1])
        if len(parts) != 2 or match is None:
            return None
        pid_text, cam, clothes, _ = match.groups()
        if (pid := self.read_pid(pid_text, source_path)) is None:  # cannot happen: the pattern takes ASCII digits
            return None
        return SourceRecord(split, source_path, pid=pid, camid=int(cam) - 1, clothes_key=clothes)
