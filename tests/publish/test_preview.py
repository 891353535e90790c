"""`builder preview`: a deterministic contact sheet that the card embeds."""

import io

import numpy as np
from PIL import Image

from builder.cli import main
from builder.preview import COLUMNS, PANEL, TINT, sample_rows, tile


def test_preview_is_written_deterministic_and_embedded(prcc_build, tmp_path, capsys):
    assert (prcc_build / "preview.png").is_file()
    assert "](preview.png)" in (prcc_build / "README.md").read_text()
    out = tmp_path / "sheet.png"
    assert main(["preview", str(prcc_build), "--out", str(out), "--n", "8"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    sheet = Image.open(out)
    assert sheet.width > COLUMNS * 3 * PANEL[0] and sheet.height > 2 * PANEL[1]
    first = out.read_bytes()
    assert main(["preview", str(prcc_build), "--out", str(out), "--n", "8"]) == 0
    assert out.read_bytes() == first
    paths = [row["source_path"] for _, row in sample_rows(prcc_build, 8)]
    assert len(set(paths)) == 8


def test_preview_of_a_non_build_is_a_clear_error(tmp_path, capsys):
    assert main(["preview", str(tmp_path)]) == 2
    assert "is not a build folder" in capsys.readouterr().err


def test_tile_tints_by_alpha_and_outlines_the_half_alpha_line():
    def png(array):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="PNG")
        return {"bytes": buffer.getvalue(), "path": None}

    width, height = PANEL
    # a soft edge: alpha 0 up to column 8, rising evenly to 1 at column 56 (level 128 first at column 33)
    ramp = np.clip((np.arange(width) - 8) * 255 / 48, 0, 255).round().astype(np.uint8)
    mask = np.tile(ramp, (height, 1))
    row = {
        "image": png(np.full((height, width, 3), 100, dtype=np.uint8)),
        "occlusion_mask": png(mask),
        "parsing": png(np.zeros((height, width), dtype=np.uint8)),
        "occluded_part": 1,
        "occluded_ratio": 0.5,
        "occluder": "parts",
    }
    tinted = np.asarray(tile("test", row))[:height, width : 2 * width].astype(int)
    line = tinted[height // 2]
    assert tuple(line[4]) == (100, 100, 100)  # alpha 0: as it is
    assert abs(line[60][0] - (100 + TINT * 155)) <= 1 and abs(line[60][1] - 100 * (1 - TINT)) <= 1  # alpha 1
    reds = line[10:30, 0]
    assert (np.diff(reds) >= -1).all() and reds[-1] > reds[0] + 20  # redder as the alpha grows (PIL rounds)
    outline = 1 + np.flatnonzero((line[1:-1] == (255, 0, 0)).all(axis=1))  # inside the panel's border
    assert outline.size and set(outline) <= {32, 33}  # only where the alpha crosses 1/2
