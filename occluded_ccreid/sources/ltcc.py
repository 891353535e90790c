"""LTCC (Qian et al., ACCV 2020): 152 identities, 478 outfits, 12 cameras.

Labels are read as the CAL / Simple-CCReID loader reads them from `<pid>_<clothes>_c<cam>_<frame>`:
camid is the camera number minus one, and an outfit is the pair (pid, clothes number).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from . import register_source
from .base import Entry, Protocol, SourceLayout, SourceRecord, files_under

_NAME = re.compile(r"^([0-9]+)_([0-9]+)_c([0-9]+)_[^/]+$")  # ASCII digits: \d also matches "١"
_SPLIT_DIRS = {"train": "train", "query": "query", "gallery": "test"}


@register_source
class LTCC(SourceLayout):
    name = "ltcc"
    pretty_name = "LTCC"
    splits = ("train", "query", "gallery")
    expected_layout = (
        "  SOURCE/train/<pid>_<clothes>_c<cam>_<frame>.png\n"
        "  SOURCE/query/<pid>_<clothes>_c<cam>_<frame>.png\n"
        "  SOURCE/test/<pid>_<clothes>_c<cam>_<frame>.png\n"
        "  splits: train, query, gallery = test"
    )
    homepage = "https://naiq.github.io/LTCC_Perosn_ReID.html"
    citation = """@inproceedings{qian2020long,
  title     = {Long-Term Cloth-Changing Person Re-identification},
  author    = {Qian, Xuelin and Wang, Wenxuan and Zhang, Li and Zhu, Fangrui and Fu, Yanwei and Xiang, Tao and
               Jiang, Yu-Gang and Xue, Xiangyang},
  booktitle = {Proceedings of the Asian Conference on Computer Vision (ACCV)},
  year      = {2020}
}"""
    protocols = (
        Protocol("general", "standard", description="all queries against the whole gallery"),
        Protocol(
            "cloth_changing",
            "cloth_changing",
            description="gallery images of the query's identity in the same clothes are ignored",
        ),
        Protocol(
            "same_clothes",
            "same_clothes",
            description="gallery images of the query's identity in other clothes are ignored (CAL's SC setting)",
        ),
    )

    def required_dirs(self) -> Iterable[str]:
        return list(_SPLIT_DIRS.values())

    def split_files(self, root: Path, split: str) -> Iterable[Entry]:
        return files_under(root / _SPLIT_DIRS[split])

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        parts = source_path.split("/")
        match = _NAME.match(parts[-1])
        if len(parts) != 2 or match is None:
            return None
        pid_text, clothes, cam = match.groups()
        if (pid := self.read_pid(pid_text, source_path)) is None:  # cannot happen: the pattern takes ASCII digits
            return None
        return SourceRecord(split, source_path, pid=pid, camid=int(cam) - 1, clothes_key=str(int(clothes)))
