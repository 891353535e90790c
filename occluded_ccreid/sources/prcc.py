"""PRCC (Yang et al., TPAMI 2019): three cameras; A and B show the same clothes, C different ones.

Labels are read as the CAL / Simple-CCReID loader reads them: pid from the identity folder,
camera from the file's first letter (train/val) or its folder (test) with A=0, B=1, C=2, and one
outfit for cameras A+B and another for camera C per identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import register_source
from .base import Entry, Protocol, SourceLayout, SourceRecord, files_under

CAMERAS = {"A": 0, "B": 1, "C": 2}
_SPLIT_DIRS = {
    "train": ("rgb/train",),
    "validation": ("rgb/val",),
    "gallery": ("rgb/test/A",),
    "query": ("rgb/test/B", "rgb/test/C"),
}


@register_source
class PRCC(SourceLayout):
    name = "prcc"
    pretty_name = "PRCC"
    splits = ("train", "validation", "query", "gallery")
    expected_layout = (
        "  SOURCE/rgb/train/<pid>/<cam>_cropped_rgb<k>.jpg   (cam = A, B or C)\n"
        "  SOURCE/rgb/val/<pid>/<cam>_cropped_rgb<k>.jpg\n"
        "  SOURCE/rgb/test/{A,B,C}/<pid>/<name>.jpg\n"
        "  splits: train = rgb/train, validation = rgb/val, gallery = test/A, query = test/B + test/C"
    )
    homepage = "https://www.isee-ai.cn/~yangqize/clothing.html"
    citation = """@article{yang2019person,
  title   = {Person Re-identification by Contour Sketch under Moderate Clothing Change},
  author  = {Yang, Qize and Wu, Ancong and Zheng, Wei-Shi},
  journal = {IEEE Transactions on Pattern Analysis and Machine Intelligence},
  year    = {2019}
}"""
    protocols = (
        Protocol(
            "same_clothes",
            "standard",
            query_camids=(1,),
            gallery_camids=(0,),
            description="query camera B against gallery camera A: same clothes",
        ),
        Protocol(
            "cloth_changing",
            "standard",
            query_camids=(2,),
            gallery_camids=(0,),
            description="query camera C against gallery camera A: different clothes",
        ),
    )

    def required_dirs(self) -> Iterable[str]:
        return [d for dirs in _SPLIT_DIRS.values() for d in dirs]

    def split_files(self, root: Path, split: str) -> Iterable[Entry]:
        for folder in _SPLIT_DIRS[split]:
            yield from files_under(root / folder)

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        parts = source_path.split("/")
        if split in ("train", "validation"):  # rgb/{train,val}/<pid>/<cam>_cropped_rgb<k>.jpg
            if len(parts) != 4:
                return None
            pid_dir, filename = parts[2], parts[3]
            cam = filename[:1]
        else:  # rgb/test/<cam>/<pid>/<name>
            if len(parts) != 5:
                return None
            cam, pid_dir = parts[2], parts[3]
        pid = self.read_pid(pid_dir, source_path)
        if cam not in CAMERAS or pid is None:
            return None
        return SourceRecord(
            split=split,
            source_path=source_path,
            pid=pid,
            camid=CAMERAS[cam],
            clothes_key="C" if cam == "C" else "AB",
        )
