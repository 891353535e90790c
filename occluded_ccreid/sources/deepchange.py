"""DeepChange (Xu & Zhu, 2021): long-term re-id over a year, 17 cameras, natural clothes changes.

Each split is a folder and a list file `<folder>-bbox.txt` of `<image name>,<tracklet id>` lines;
as in the CAL / Simple-CCReID loader, the list defines the split. From a name
`P<pid>_C<camera>_<key>_...`: pid, camera (camid = number minus one), and the outfit (pid, key).
The tracklet id is kept as the `tracklet_id` column: the dataset's protocol (its authors', and
CAL's, which puts the tracklet id in place of the camera id) counts a gallery image of the
query's identity as a match even from the same camera, unless it comes from the same tracklet.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from . import register_source
from .base import LayoutError, Protocol, SourceLayout, SourceRecord, SplitScan, ascii_int, files_under, is_image_name

_SPLIT_DIRS = {
    "train": "train-set",
    "validation_query": "val-set-query",
    "validation_gallery": "val-set-gallery",
    "query": "test-set-query",
    "gallery": "test-set-gallery",
}


@register_source
class DeepChange(SourceLayout):
    name = "deepchange"
    pretty_name = "DeepChange"
    splits = tuple(_SPLIT_DIRS)
    expected_layout = (
        "  SOURCE/train-set/P<pid>_C<camera>_<clothes key>_....jpg   and SOURCE/train-set-bbox.txt\n"
        "  SOURCE/{val-set-query,val-set-gallery,test-set-query,test-set-gallery}/... and their <folder>-bbox.txt\n"
        "  each list file: one '<image name>,<tracklet id>' line per image of its folder\n"
        "  splits: train, validation_query, validation_gallery, query = test-set-query, gallery = test-set-gallery"
    )
    homepage = "https://github.com/PengBoXiangShang/deepchange"
    citation = """@article{xu2021deepchange,
  title   = {DeepChange: A Long-Term Person Re-Identification Benchmark},
  author  = {Xu, Peng and Zhu, Xiatian},
  journal = {arXiv preprint arXiv:2105.14685},
  year    = {2021}
}"""
    protocols = (
        Protocol(
            "general",
            "standard",
            junk_column="tracklet_id",
            description=(
                "all queries against the whole gallery; a gallery image of the query's identity is a "
                "match even from the same camera, unless it is from the query's tracklet"
            ),
        ),
    )
    extra_columns = {"tracklet_id": "int64"}
    notes = (
        "`camid` is the camera number of the file name minus one; `tracklet_id` comes from the split's "
        "`-bbox.txt` list, and images of the query's tracklet are the ones the protocol ignores."
    )

    def required_dirs(self) -> Iterable[str]:
        return list(_SPLIT_DIRS.values())

    def check_layout(self, root: Path) -> None:
        super().check_layout(root)
        missing = [
            f"{folder}-bbox.txt" for folder in _SPLIT_DIRS.values() if not (root / f"{folder}-bbox.txt").is_file()
        ]
        if missing:
            raise LayoutError(
                f"{root} is not in the DeepChange layout: missing list file(s) {', '.join(missing)}. "
                f"Expected layout:\n{self.expected_layout}"
            )

    def scan_split(self, root: Path, split: str) -> SplitScan:
        """Listed images are the split (a listed file that is missing is then skipped as undecodable);
        unlisted files in the folder are reported as ignored."""
        folder = _SPLIT_DIRS[split]
        listed = self._read_list(root / f"{folder}-bbox.txt")
        out = SplitScan()
        for entry in files_under(root / folder):
            rel = entry.name(root)
            if rel.removeprefix(folder + "/") not in listed:
                out.add_unlisted(rel)
        for name, tracklet in listed.items():
            rel = f"{folder}/{name}"
            if is_image_name(rel):
                out.add_image(rel, self._parse(split, rel, tracklet))
            else:
                out.add_unlisted(rel)
        return out

    def list_files(self, records: Iterable[SourceRecord]) -> dict[str, str]:
        """`<folder>-bbox.txt` of each split among `records`: one `<image name>,<tracklet id>` line per
        image, in name order (what `_read_list` and CAL's loader read)."""
        listed: dict[str, list[tuple[str, int]]] = {}
        for record in records:
            folder = _SPLIT_DIRS[record.split]
            name = record.source_path.removeprefix(folder + "/")
            listed.setdefault(f"{folder}-bbox.txt", []).append((name, record.extras["tracklet_id"]))
        return {
            path: "".join(f"{name},{tracklet}\n" for name, tracklet in sorted(entries))
            for path, entries in listed.items()
        }

    def _read_list(self, path: Path) -> dict[str, int]:
        try:
            return self._read_lines(path)
        except UnicodeDecodeError as exc:
            raise LayoutError(
                f"{path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} cannot be decoded); save it as UTF-8"
            ) from None

    def _read_lines(self, path: Path) -> dict[str, int]:
        listed: dict[str, int] = {}
        with open(path, encoding="utf-8") as file:
            for number, line in enumerate(file, 1):
                line = line.strip()
                if not line:
                    continue
                name, _, tracklet_text = line.partition(",")
                tracklet = ascii_int(tracklet_text.strip())
                if not name or tracklet is None:
                    raise LayoutError(
                        f"{path} line {number}: expected '<image name>,<tracklet id>' "
                        f"(tracklet id in ASCII digits), got {line!r}"
                    )
                if name in listed:
                    raise LayoutError(f"{path} line {number}: {name} is listed twice")
                listed[name] = tracklet
        return listed

    def _parse(self, split: str, source_path: str, tracklet: int) -> SourceRecord | None:
        fields = source_path.rsplit("/", 1)[-1].split(".")[0].split("_")  # as CAL splits the name
        if len(fields) < 3 or not fields[0].startswith("P") or not fields[1].startswith("C") or not fields[2]:
            return None
        pid, cam = self.read_pid(fields[0][1:], source_path), ascii_int(fields[1][1:])
        if pid is None or cam is None:
            return None
        return SourceRecord(
            split, source_path, pid=pid, camid=cam - 1, clothes_key=fields[2], extras={"tracklet_id": tracklet}
        )
