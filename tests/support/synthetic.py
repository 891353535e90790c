"""Synthetic PRCC / LTCC source trees in the exact on-disk layouts, with known part maps.

Each image is a drawn pedestrian whose six Pascal-Person-Part parts are rectangles/ellipses at
known places; `parsing/` beside the tree holds the true part maps in the `--parsing-dir` format.
Outfit colours depend on (pid, outfit), so clothes really change where the labels say so.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

# Part boxes as fractions (row0, row1, col0, col1) of the crop; the head is an ellipse in its box.
PART_BOXES: dict[int, list[tuple[float, float, float, float]]] = {
    1: [(0.02, 0.18, 0.38, 0.62)],  # head
    2: [(0.18, 0.50, 0.30, 0.70)],  # torso
    3: [(0.18, 0.34, 0.18, 0.30), (0.18, 0.34, 0.70, 0.82)],  # upper arms
    4: [(0.34, 0.50, 0.18, 0.30), (0.34, 0.50, 0.70, 0.82)],  # lower arms
    5: [(0.50, 0.72, 0.32, 0.49), (0.50, 0.72, 0.51, 0.68)],  # upper legs
    6: [(0.72, 0.95, 0.32, 0.49), (0.72, 0.95, 0.51, 0.68)],  # lower legs
}
SIZES = [(96, 48), (128, 64), (80, 40), (112, 48)]  # (H, W), PRCC/LTCC-like aspect


def _rng(*key: object) -> np.random.Generator:
    digest = hashlib.sha256(repr(key).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_person(
    height: int,
    width: int,
    key: tuple,
    outfit: tuple,
    missing: tuple[int, ...] = (),
    scale: float = 1.0,
    offset: tuple[float, float] = (0.0, 0.0),
):
    """(RGB image HxWx3 uint8, part map HxW uint8) for one synthetic pedestrian. `scale` shrinks
    the person inside the crop and `offset` (rows, cols, as fractions) moves it, as loose
    detections do."""
    rng = _rng("person", key)
    shift_r, shift_c = rng.uniform(-0.02, 0.02, size=2)
    shift_r, shift_c = shift_r + offset[0], shift_c + offset[1]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = rng.integers(30, 200, size=3)
    image = np.clip(image.astype(int) + rng.integers(-20, 20, size=(height, width, 1)), 0, 255).astype(np.uint8)
    parts = np.zeros((height, width), dtype=np.uint8)
    colours = {
        1: (224, 172, 105),
        2: _rng("top", outfit).integers(0, 255, 3),
        5: _rng("bottom", outfit).integers(0, 255, 3),
    }
    colours[3], colours[4], colours[6] = colours[2], (224, 172, 105), colours[5]
    rows, cols = np.mgrid[0:height, 0:width]
    for part, boxes in PART_BOXES.items():
        if part in missing:
            continue
        for r0, r1, c0, c1 in boxes:
            r0, r1 = (0.5 + (r - 0.5) * scale for r in (r0, r1))
            c0, c1 = (0.5 + (c - 0.5) * scale for c in (c0, c1))
            r0, r1 = round((r0 + shift_r) * height), round((r1 + shift_r) * height)
            c0, c1 = round((c0 + shift_c) * width), round((c1 + shift_c) * width)
            inside = (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
            if part == 1:  # head: ellipse inside its box
                cy, cx, ry, rx = (r0 + r1) / 2, (c0 + c1) / 2, max((r1 - r0) / 2, 1), max((c1 - c0) / 2, 1)
                inside = ((rows + 0.5 - cy) / ry) ** 2 + ((cols + 0.5 - cx) / rx) ** 2 <= 1
            parts[inside] = part
            image[inside] = colours[part]
    return image, parts


@dataclass
class SyntheticTree:
    root: Path
    parsing_dir: Path
    # source_path -> (split, pid, camid, clothes_key)
    expected: dict[str, tuple[str, int, int, str]] = field(default_factory=dict)
    corrupt: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    extras: dict[str, dict] = field(default_factory=dict)  # source_path -> source-specific columns
    missing: list[str] = field(default_factory=list)  # listed by the source, absent on disk: skipped

    def _write(self, rel: str, image: np.ndarray, parts: np.ndarray, mode: str | None = None) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pil = Image.fromarray(image)
        if mode == "L":
            pil = pil.convert("L")
        elif mode == "RGBA":
            pil = pil.convert("RGBA")
        elif mode == "P":
            pil = pil.convert("P", palette=Image.Palette.ADAPTIVE)
        elif mode == "I;16":
            pil = Image.fromarray(np.asarray(pil.convert("L")).astype("<u2") * 257)
        if path.suffix == ".jpg":
            pil.save(path, quality=95)
        else:
            pil.save(path)
        map_path = self.parsing_dir / Path(rel.lstrip("/")).with_suffix(".png")
        map_path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(parts).save(map_path)

    def add(
        self,
        rel: str,
        size: tuple[int, int],
        split: str,
        pid: int,
        camid: int,
        outfit: tuple[int, str | int | None],
        mode: str | None = None,
        extras: dict | None = None,
    ) -> None:
        """Draw a person of `size` (H, W) in `outfit` (pid, clothes key; None: unknown), write it and
        its part map, and record the labels a build must give it."""
        image, parts = draw_person(*size, rel, outfit)
        self._write(rel, image, parts, mode)
        self.expected[rel] = (split, pid, camid, None if outfit[1] is None else str(outfit[1]))
        if extras:
            self.extras[rel] = extras

    def _add_quirks(self, folder: str, corrupt_name: str) -> None:
        for name in (".DS_Store", "Thumbs.db", "notes.txt"):
            (self.root / folder / name).write_bytes(b"not an image")
            self.ignored.append(f"{folder}/{name}")
        (self.root / folder / corrupt_name).write_bytes(b"\xff\xd8\xff\xe0 truncated garbage")
        self.corrupt.append(f"{folder}/{corrupt_name}")


def make_prcc_tree(
    base: Path, n_train: int = 3, n_test: int = 3, per_camera: int = 2, quirks: bool = True
) -> SyntheticTree:
    """PRCC layout: rgb/{train,val}/<pid>/<cam>_cropped_rgb<k>.jpg and rgb/test/<cam>/<pid>/*.jpg."""
    tree = SyntheticTree(base / "PRCC", base / "PRCC-parsing")
    cam_ids = {"A": 0, "B": 1, "C": 2}
    counter = 0
    for split, folder, pids in (
        ("train", "train", range(1, n_train + 1)),
        ("validation", "val", range(1, n_train + 1)),
    ):
        for pid in pids:
            for cam in "ABC":
                for k in range(per_camera):
                    number = k + 1 + (100 if split == "validation" else 0)
                    rel = f"rgb/{folder}/{pid:03d}/{cam}_cropped_rgb{number:03d}.jpg"
                    outfit = (pid, "C" if cam == "C" else "AB")
                    tree.add(rel, SIZES[counter % len(SIZES)], split, pid, cam_ids[cam], outfit)
                    counter += 1
    for cam, split in (("A", "gallery"), ("B", "query"), ("C", "query")):
        for pid in range(100, 100 + n_test):
            for k in range(per_camera):
                rel = f"rgb/test/{cam}/{pid:03d}/cropped_rgb{k * 7 + 3:03d}.jpg"
                tree.add(rel, SIZES[counter % len(SIZES)], split, pid, cam_ids[cam], (pid, "C" if cam == "C" else "AB"))
                counter += 1
    if quirks:
        tree._add_quirks("rgb/train/001", "B_cropped_rgb999.jpg")
        # grayscale JPEG and a tiny 10x24 (WxH) crop
        tree.add("rgb/train/002/A_cropped_rgb500.jpg", (96, 48), "train", 2, 0, (2, "AB"), mode="L")
        tree.add("rgb/test/B/100/cropped_rgb900.jpg", (24, 10), "query", 100, 1, (100, "AB"))
    return tree


def make_ltcc_tree(
    base: Path, n_train: int = 3, n_test: int = 3, per_outfit: int = 2, quirks: bool = True
) -> SyntheticTree:
    """LTCC layout: {train,query,test}/<pid>_<clothes>_c<cam>_<frame>.png."""
    tree = SyntheticTree(base / "LTCC", base / "LTCC-parsing")
    counter = 0
    for split, folder, pids in (
        ("train", "train", range(1, n_train + 1)),
        ("query", "query", range(50, 50 + n_test)),
        ("gallery", "test", range(50, 50 + n_test)),
    ):
        for pid in pids:
            for clothes in (1, 2):
                for k in range(per_outfit):
                    cam = 1 + (pid + clothes + k + (split == "query")) % 12
                    rel = f"{folder}/{pid:03d}_{clothes}_c{cam}_{counter:06d}.png"
                    tree.add(rel, SIZES[counter % len(SIZES)], split, pid, cam - 1, (pid, clothes))
                    counter += 1
    if quirks:
        tree._add_quirks("train", "001_1_c3_999999.png")
        for i, mode in enumerate(("L", "RGBA", "P", "I;16")):
            tree.add(f"test/051_2_c{i + 2}_{900000 + i}.png", (80, 40), "gallery", 51, i + 1, (51, 2), mode=mode)
        tree.add("query/050_1_c5_990000.png", (24, 10), "query", 50, 4, (50, 1))
    return tree


def _dot_files(tree: SyntheticTree, folder: str) -> None:
    """macOS leftovers beside the images: never images, in any source."""
    for name in ("._" + "x.jpg", ".DS_Store"):
        (tree.root / folder / name).write_bytes(b"\x00\x05\x16\x07 AppleDouble")
        tree.ignored.append(f"{folder}/{name}")


def make_vcclothes_tree(base: Path, n_train: int = 3, n_test: int = 3) -> SyntheticTree:
    """VC-Clothes layout: {train,query,gallery}/<pid>-<camera>-<clothes>-<frame>.jpg, cameras 1..4;
    people keep outfit 1 on cameras 1-3 and change to outfit 2 on camera 4 (plus outfit 3 on camera 2
    for the test identities, so that same-camera-pair queries have other outfits around)."""
    tree = SyntheticTree(base / "VC-Clothes", base / "VC-Clothes-parsing")
    counter = 0
    for split, folder, pids in (
        ("train", "train", range(1, n_train + 1)),
        ("query", "query", range(500, 500 + n_test)),
        ("gallery", "gallery", range(500, 500 + n_test)),
    ):
        for pid in pids:
            for cam in (1, 2, 3, 4):
                clothes = 2 if cam == 4 else 1
                for frame in range(2 if split == "gallery" else 1):
                    rel = f"{folder}/{pid:04d}-{cam:02d}-{clothes:02d}-{frame + 10 * (split == 'query'):02d}.jpg"
                    tree.add(rel, SIZES[counter % len(SIZES)], split, pid, cam - 1, (pid, f"{clothes:02d}"))
                    counter += 1
            if split != "train":
                rel = f"{folder}/{pid:04d}-02-03-{20 + (split == 'query'):02d}.jpg"
                tree.add(rel, SIZES[counter % len(SIZES)], split, pid, 1, (pid, "03"))
                counter += 1
    _dot_files(tree, "train")
    _dot_files(tree, "gallery")
    return tree


DEEPCHANGE_DIRS = {
    "train": "train-set",
    "validation_query": "val-set-query",
    "validation_gallery": "val-set-gallery",
    "query": "test-set-query",
    "gallery": "test-set-gallery",
}


def make_deepchange_tree(base: Path) -> SyntheticTree:
    """DeepChange layout: <folder>/P<pid>_C<cam>_<clothes key>_<frame>.jpg listed with their tracklet
    ids in <folder>-bbox.txt. Tracklet = (pid, camera, outfit); gallery tracklets repeat the query's
    camera with another tracklet, so the same-camera-other-tracklet rule matters. An unlisted image
    and dot-files are ignored; a listed image that is missing is skipped."""
    tree = SyntheticTree(base / "DeepChangeDataset", base / "DeepChange-parsing")
    pids = {
        "train": range(1, 4),
        "validation_query": range(200, 203),
        "validation_gallery": range(200, 203),
        "query": range(400, 403),
        "gallery": range(400, 403),
    }
    lines: dict[str, list[str]] = {folder: [] for folder in DEEPCHANGE_DIRS.values()}
    counter = 0
    for split, folder in DEEPCHANGE_DIRS.items():
        for pid in pids[split]:
            for cam, key, tracklet_base in ((3, "D20200105", 0), (3, "D20200321", 1), (11, "D20200321", 2)):
                for _ in range(2):
                    tracklet = pid * 10 + tracklet_base + (5 if split.endswith("gallery") else 0)
                    name = f"P{pid:05d}_C{cam:02d}_{key}_{counter:06d}.jpg"
                    rel = f"{folder}/{name}"
                    tree.add(
                        rel,
                        SIZES[counter % len(SIZES)],
                        split,
                        pid,
                        cam - 1,
                        (pid, key),
                        extras={"tracklet_id": tracklet},
                    )
                    lines[folder].append(f"{name},{tracklet}")
                    counter += 1
    lines["test-set-gallery"].append("P00400_C03_D20200105_999999.jpg,4000")
    tree.missing.append("test-set-gallery/P00400_C03_D20200105_999999.jpg")
    tree.extras[tree.missing[-1]] = {"tracklet_id": 4000}
    stray = "train-set/P00001_C03_D20200105_888888.jpg"  # in the folder, not in the list
    tree._write(stray, *draw_person(80, 40, stray, (1, "D20200105")))
    tree.ignored.append(stray)
    _dot_files(tree, "train-set")
    for folder, folder_lines in lines.items():
        (tree.root / f"{folder}-bbox.txt").write_text("\n".join(folder_lines) + "\n")
    return tree


LAST_DIRS = {
    "train": ("train", True),
    "validation_query": ("val/query", False),
    "validation_gallery": ("val/gallery", True),
    "query": ("test/query", False),
    "gallery": ("test/gallery", True),
}


def make_last_tree(base: Path) -> SyntheticTree:
    """LaST layout: train/<pid>/<pid>_<k>_<clothes>.jpg, {val,test}/query/<pid>_<k>_<x>.jpg,
    {val,test}/gallery/<pid>/<pid>_<k>_<x>.jpg. No camera labels; clothes labels in train only."""
    tree = SyntheticTree(base / "last", base / "last-parsing")
    pids = {
        "train": range(0, 3),
        "validation_query": range(100, 103),
        "validation_gallery": range(100, 104),
        "query": range(300, 303),
        "gallery": range(300, 304),
    }
    counter = 0
    for split, (folder, in_folders) in LAST_DIRS.items():
        for pid in pids[split]:
            for k in range(1 if split.endswith("query") else 3):
                clothes = k % 2
                name = f"{pid:06d}_{counter:04d}_{clothes}.jpg"
                rel = f"{folder}/{pid:06d}/{name}" if in_folders else f"{folder}/{name}"
                tree.add(rel, SIZES[counter % len(SIZES)], split, pid, -1, (pid, clothes if split == "train" else None))
                counter += 1
    _dot_files(tree, "train/000000")
    _dot_files(tree, "test/query")
    return tree


def make_manifest_tree(base: Path) -> tuple[SyntheticTree, list[dict]]:
    """Images of a Market-1501-like dataset anywhere on disk and the rows of a manifest listing them
    (relative paths, one absolute path, one missing file, one dot-file; extra columns `quality`
    (int) and `note` (text)). Write the rows with `write_manifest`."""
    tree = SyntheticTree(base / "mydata", base / "mydata-parsing")
    rows: list[dict] = []
    counter = 0
    for split, pids in (("train", range(1, 4)), ("query", range(20, 23)), ("gallery", range(20, 23))):
        for pid in pids:
            for cam in range(2 if split == "query" else 3):
                clothes = f"c{cam % 2}"
                rel = f"images/{split}/{pid:04d}_{cam}_{counter}.png"
                extras = {"quality": counter % 5, "note": f"n{counter}"}
                tree.add(rel, SIZES[counter % len(SIZES)], split, pid, cam, (pid, clothes), extras=extras)
                rows.append({"path": rel, "pid": pid, "split": split, "camid": cam, "clothes_id": clothes, **extras})
                counter += 1
    outside = (base / "elsewhere" / "0030_0.png").as_posix()  # an absolute path outside the manifest's folder
    tree.add(outside, (96, 48), "gallery", 30, 0, (30, "c0"), extras={"quality": 1, "note": "abs"})
    rows.append(
        {"path": outside, "pid": 30, "split": "gallery", "camid": 0, "clothes_id": "c0", "quality": 1, "note": "abs"}
    )
    rows.append(
        {
            "path": "images/gallery/0020_9_gone.png",
            "pid": 20,
            "split": "gallery",
            "camid": 2,
            "clothes_id": "c0",
            "quality": 0,
            "note": "missing",
        }
    )
    tree.missing.append("images/gallery/0020_9_gone.png")
    (tree.root / "images" / "train" / "._0001_0_0.png").write_bytes(b"\x00\x05\x16\x07")
    rows.append(
        {
            "path": "images/train/._0001_0_0.png",
            "pid": 1,
            "split": "train",
            "camid": 0,
            "clothes_id": "c0",
            "quality": 0,
            "note": "dot",
        }
    )
    tree.ignored.append("images/train/._0001_0_0.png")
    return tree, rows


def write_manifest(rows: list[dict], path: Path) -> Path:
    """`rows` as CSV, JSON Lines or Parquet, by `path`'s suffix."""
    import csv
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".csv":
        with open(path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def make_tiny_segformer(path: Path, id2label: dict[int, str] | None = None) -> Path:
    """A randomly initialised SegFormer saved with `save_pretrained`, loaded back through the
    builder's real `from_pretrained(path)` code path. Labels default to Pascal-Person-Part."""
    import torch
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    id2label = id2label or dict(
        enumerate(["background", "head", "torso", "upper arms", "lower arms", "upper legs", "lower legs"])
    )
    config = SegformerConfig(
        num_channels=3,
        num_encoder_blocks=2,
        depths=[1, 1],
        sr_ratios=[2, 1],
        hidden_sizes=[8, 16],
        patch_sizes=[7, 3],
        strides=[4, 2],
        num_attention_heads=[1, 1],
        mlp_ratios=[2, 2],
        decoder_hidden_size=16,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
    )
    torch.manual_seed(0)
    SegformerForSemanticSegmentation(config).save_pretrained(path)
    SegformerImageProcessor().save_pretrained(path)
    return path


def make_objects(folder: Path) -> Path:
    """Three RGBA cut-outs with soft alpha (a bag, a pole, a box), a JPEG and an opaque PNG (not usable)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, (h, w), colour in (
        ("bag.png", (30, 24), (150, 40, 40)),
        ("pole.png", (80, 8), (90, 90, 90)),
        ("sub/box.png", (20, 30), (40, 140, 60)),
    ):
        rows_, cols = np.mgrid[0:h, 0:w]
        alpha = np.clip(255 * (1.2 - np.hypot((rows_ - h / 2) / (h / 2), (cols - w / 2) / (w / 2))), 0, 255)
        rgba = np.dstack([np.broadcast_to(np.array(colour, np.uint8), (h, w, 3)), alpha.astype(np.uint8)])
        (folder / name).parent.mkdir(exist_ok=True)
        Image.fromarray(rgba, "RGBA").save(folder / name)
    Image.new("RGB", (10, 10), (1, 2, 3)).save(folder / "photo.jpg")
    Image.new("RGB", (10, 10), (1, 2, 3)).save(folder / "opaque.png")
    return folder
