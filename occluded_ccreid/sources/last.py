"""LaST (Shu et al., 2021): large-scale spatio-temporal re-id from movies, ~228k images.

Labels are read as the CAL / Simple-CCReID loader reads them: pid is the first `_` field of the
file name, and in train the outfit is (pid, last field). LaST publishes clothes labels for train
only and no camera labels at all, so `camid` is -1 everywhere and `clothes_id` is -1 outside
train. Its protocol counts every gallery image of the query's identity as a match (CAL gives
every image its own camera id for this); gallery identity folders must match the names in them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import register_source
from .base import Entry, Protocol, SourceLayout, SourceRecord, ascii_int, files_under

# split -> (folder, whether its images sit in <pid>/ folders)
_SPLIT_DIRS = {
    "train": ("train", True),
    "validation_query": ("val/query", False),
    "validation_gallery": ("val/gallery", True),
    "query": ("test/query", False),
    "gallery": ("test/gallery", True),
}


@register_source
class LaST(SourceLayout):
    name = "last"
    pretty_name = "LaST"
    splits = tuple(_SPLIT_DIRS)
    expected_layout = (
        "  SOURCE/train/<pid>/<pid>_..._<clothes>.jpg\n"
        "  SOURCE/val/query/<pid>_....jpg      SOURCE/val/gallery/<pid>/<pid>_....jpg\n"
        "  SOURCE/test/query/<pid>_....jpg     SOURCE/test/gallery/<pid>/<pid>_....jpg\n"
        "  splits: train, validation_query, validation_gallery, query = test/query, gallery = test/gallery"
    )
    homepage = "https://github.com/shuxjweb/last"
    citation = """@article{shu2021large,
  title   = {Large-Scale Spatio-Temporal Person Re-identification: Algorithm and Benchmark},
  author  = {Shu, Xiujun and Wang, Xiao and Zang, Xianghao and Zhang, Shiliang and Chen, Yuanqi and Li, Ge and
             Tian, Qi},
  journal = {IEEE Transactions on Circuits and Systems for Video Technology},
  year    = {2021}
}"""
    protocols = (
        Protocol(
            "general",
            "standard",
            junk_column=None,
            description="all queries against the whole gallery; every gallery image of the query's identity is a match",
        ),
    )
    notes = (
        "LaST has no camera labels (`camid` is -1) and clothes labels for train only (`clothes_id` is -1 "
        "in the other splits)."
    )

    def required_dirs(self) -> Iterable[str]:
        return [folder for folder, _ in _SPLIT_DIRS.values()]

    def split_files(self, root: Path, split: str) -> Iterable[Entry]:
        return files_under(root / _SPLIT_DIRS[split][0])

    def parse_record(self, split: str, source_path: str) -> SourceRecord | None:
        folder, in_pid_folders = _SPLIT_DIRS[split]
        parts = source_path.removeprefix(folder + "/").split("/")
        if len(parts) != (2 if in_pid_folders else 1):
            return None
        fields = parts[-1].split(".")[0].split("_")  # as CAL splits the name
        pid = self.read_pid(fields[0], source_path)
        if pid is None or (in_pid_folders and ascii_int(parts[0]) != pid):
            return None
        clothes = fields[-1] if split == "train" and len(fields) > 1 else None
        if split == "train" and not clothes:
            return None
        return SourceRecord(split, source_path, pid=pid, camid=-1, clothes_key=clothes)
