"""`builder preview`: a deterministic contact sheet that the card embeds."""

from PIL import Image

from builder.cli import main
from builder.preview import COLUMNS, PANEL, sample_rows


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
