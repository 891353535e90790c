"""by_part.png: rank-1 and mAP by the query's occluded part and occluded ratio, occluded vs clean.

Drawn with PIL, which the package already needs, rather than adding matplotlib for two bar charts.
One row per protocol; left panel by occluded part, right panel by occluded ratio. Each group shows
rank-1 bars (occluded, and clean when the build kept clean images) with mAP as a black tick on each
bar; the query count is under the group's name.
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageDraw, ImageFont

PANEL_W, PANEL_H = 620, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 34, 46  # plot-area margins inside a panel
LEGEND_H = 34
COLOURS = {"occluded": (52, 101, 164), "clean": (170, 170, 170), "clean_gallery": (114, 159, 207)}
LABELS = {
    "occluded": "occluded rank-1",
    "clean": "clean rank-1",
    "clean_gallery": "occluded query, clean gallery rank-1",
}


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


def _font(size: int) -> Font:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def draw_breakdowns(results: dict[str, Any]) -> Image.Image:
    protocols = list(results["by_part"])
    settings = [s for s in COLOURS if s in next(iter(results["protocols"].values()))]
    image = Image.new("RGB", (2 * PANEL_W, LEGEND_H + len(protocols) * PANEL_H), "white")
    draw = ImageDraw.Draw(image)
    font, small = _font(13), _font(11)
    x = 10
    for setting in settings:  # legend
        draw.rectangle([x, 10, x + 14, 24], fill=COLOURS[setting])
        draw.text((x + 20, 10), LABELS[setting], fill="black", font=font)
        x += 40 + int(draw.textlength(LABELS[setting], font=font))
    draw.line([x, 17, x + 14, 17], fill="black", width=3)
    draw.text((x + 20, 10), "mAP", fill="black", font=font)
    for row, name in enumerate(protocols):
        for col, (key, what) in enumerate((("by_part", "occluded part"), ("by_ratio", "occluded ratio"))):
            origin = (col * PANEL_W, LEGEND_H + row * PANEL_H)
            _panel(draw, origin, f"{name}: by {what}", results[key][name], settings, font, small)
    return image


def _panel(
    draw: ImageDraw.ImageDraw,
    origin: tuple[int, int],
    title: str,
    groups: dict[str, Any],
    settings: list[str],
    font: Font,
    small: Font,
) -> None:
    ox, oy = origin
    x0, x1, y0, y1 = ox + LEFT, ox + PANEL_W - RIGHT, oy + TOP, oy + PANEL_H - BOTTOM
    draw.text((x0, oy + 10), title, fill="black", font=font)
    for tick in range(0, 101, 25):  # y axis in %
        y = y1 - (y1 - y0) * tick / 100
        draw.line([x0, y, x1, y], fill=(225, 225, 225) if tick else "black")
        draw.text((x0 - 6, y), f"{tick}%", fill="black", font=small, anchor="rm")
    if not groups:
        return
    slot = (x1 - x0) / len(groups)
    bar_w = min(28.0, slot * 0.8 / len(settings))
    for i, (group, scores) in enumerate(groups.items()):
        centre = x0 + slot * (i + 0.5)
        for j, setting in enumerate(settings):
            s = scores if setting == "occluded" else scores.get(setting, {})
            left = centre - bar_w * len(settings) / 2 + j * bar_w
            if s.get("rank1") is not None:
                draw.rectangle([left + 1, y1 - (y1 - y0) * s["rank1"], left + bar_w - 1, y1], fill=COLOURS[setting])
            if s.get("mAP") is not None:
                y = y1 - (y1 - y0) * s["mAP"]
                draw.line([left, y, left + bar_w, y], fill="black", width=3)
        draw.text((centre, y1 + 6), group, fill="black", font=small, anchor="ma")
        draw.text((centre, y1 + 22), f"n={scores['query_rows']}", fill=(90, 90, 90), font=small, anchor="ma")


__all__ = ["draw_breakdowns"]
