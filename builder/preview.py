"""`builder preview`: a contact sheet of a build, for judging occlusion quality by eye.

Each tile shows one row three times: the occluded image, the same image tinted red in proportion
to the occluder's alpha (`occlusion_mask` / 255: untouched pixels keep their colour, fully occluded
ones are 45% red) with a red outline where the alpha crosses 1/2 (mask >= 128), and the part map
in colour, captioned with split, what was drawn (the part, rectangle side, person, object; several
joined by "+") and the (alpha-weighted) ratio of the occluders' union.
Rows are a deterministic sample: the n source paths with the smallest SHA-256, which spreads over
splits and identities and is the same for the same build.
"""

from __future__ import annotations

import hashlib
import heapq
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFilter

from occluded_ccreid.layout import DATA_DIR, PREVIEW_NAME
from occluded_ccreid.parts import PART_NAMES, PART_PALETTE

PANEL = (64, 128)  # (W, H) of each of the three panels
COLUMNS = 6
CAPTION = 24
PART_COLOURS = np.array(PART_PALETTE, dtype=np.uint8)  # the parsing PNGs' own palette
TINT = 0.45  # how red a fully occluded pixel is drawn
OUTLINE_LEVEL = 128  # the outline follows where the mask reaches this level (alpha 1/2)
COLUMNS_READ = ["image", "occlusion_mask", "parsing", "occluded_part", "occluded_ratio", "occluder", "source_path"]


def sample_rows(folder: Path, n: int) -> list[tuple[str, dict]]:
    """(split, row) for the n rows whose source_path hashes lowest."""

    def keyed():
        for shard in sorted((folder / DATA_DIR).glob("*.parquet")):
            split = shard.name.rsplit("-", 3)[0]
            for index, path in enumerate(pq.read_table(shard, columns=["source_path"])["source_path"].to_pylist()):
                yield hashlib.sha256(path.encode()).hexdigest(), shard, split, index

    chosen = heapq.nsmallest(n, keyed())  # = sorted(...)[:n], holding n keys, not one per row
    rows = []
    for shard in sorted({c[1] for c in chosen}):
        # Read only the row groups that hold chosen rows: shards can be large.
        file = pq.ParquetFile(shard)
        starts = np.cumsum([0] + [file.metadata.row_group(g).num_rows for g in range(file.num_row_groups)])
        wanted: dict[int, list[tuple[str, int]]] = {}
        for _, _, split, index in (c for c in chosen if c[1] == shard):
            group = int(np.searchsorted(starts, index, side="right") - 1)
            wanted.setdefault(group, []).append((split, index - int(starts[group])))
        for group, items in sorted(wanted.items()):
            table = file.read_row_group(group, columns=COLUMNS_READ)
            for split, offset in items:
                rows.append((split, {k: v[0] for k, v in table.slice(offset, 1).to_pydict().items()}))
    rows.sort(key=lambda r: hashlib.sha256(r[1]["source_path"].encode()).hexdigest())
    return rows


def _decode(value: dict, mode: str) -> Image.Image:
    return Image.open(io.BytesIO(value["bytes"])).convert(mode)


KIND_LABELS = {"rectangle": "rect", "objects": "object"}  # short enough for a 192-pixel caption


def caption(split: str, row: dict) -> str:
    """ "<split>: <what was drawn>": each occluder by its kind (a part occluder by its part, a
    rectangle by its side), several joined by "+"."""
    names: list[str] = []
    for name in row["occluder"].split("+"):
        kind, _, side = name.partition("-")
        if kind == "parts":  # `occluded_part` is the first part occluder's
            earlier = row["occluder"].split("+")[: len(names)]
            names.append("part" if "parts" in earlier else PART_NAMES[row["occluded_part"]])
        else:
            names.append(KIND_LABELS.get(kind, kind) + (f"-{side}" if side else ""))
    return f"{split}: {'+'.join(names)}"


def tile(split: str, row: dict) -> Image.Image:
    image = _decode(row["image"], "RGB").resize(PANEL, Image.Resampling.BILINEAR)
    mask = _decode(row["occlusion_mask"], "L").resize(PANEL, Image.Resampling.BILINEAR)
    # The part values themselves (a palette PNG's indices, or an older build's grey levels), never
    # a conversion of the palette's colours.
    parts = np.asarray(Image.open(io.BytesIO(row["parsing"]["bytes"])).resize(PANEL, Image.Resampling.NEAREST))
    red = Image.new("RGB", PANEL, (255, 0, 0))
    tinted = Image.composite(Image.blend(image, red, TINT), image, mask)  # the mask is the blend's alpha
    edge = mask.point(lambda level: 255 if level >= OUTLINE_LEVEL else 0).filter(ImageFilter.FIND_EDGES)
    tinted = Image.composite(red, tinted, edge)
    coloured = Image.fromarray(PART_COLOURS[np.clip(parts, 0, 6)])
    out = Image.new("RGB", (PANEL[0] * 3, PANEL[1] + CAPTION), (255, 255, 255))
    for i, panel in enumerate((image, tinted, coloured)):
        out.paste(panel, (i * PANEL[0], 0))
    draw = ImageDraw.Draw(out)
    draw.text((2, PANEL[1] + 1), caption(split, row), fill=(0, 0, 0))
    draw.text((2, PANEL[1] + 12), f"ratio {row['occluded_ratio']:.2f}", fill=(0, 0, 0))
    return out


def make_preview(folder: str | Path, out: str | Path | None = None, n: int = 24) -> Path:
    """Write the contact sheet (default: FOLDER/preview.png) and return its path."""
    folder = Path(folder)
    if not (folder / DATA_DIR).is_dir():
        raise FileNotFoundError(f"{folder} is not a build folder (no data/); run `builder build` first")
    rows = sample_rows(folder, n)
    if not rows:
        raise ValueError(f"{folder} has no rows to preview")
    tiles = [tile(split, row) for split, row in rows]
    width, height = tiles[0].size
    cols = min(COLUMNS, len(tiles))
    sheet = Image.new("RGB", (cols * (width + 4) + 4, -(-len(tiles) // cols) * (height + 4) + 4), (255, 255, 255))
    for i, t in enumerate(tiles):
        sheet.paste(t, (4 + (i % cols) * (width + 4), 4 + (i // cols) * (height + 4)))
    target = Path(out) if out else folder / PREVIEW_NAME
    sheet.save(target, format="PNG")
    return target
