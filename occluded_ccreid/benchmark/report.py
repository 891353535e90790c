"""The benchmark's outputs: the printed table, results.json, report.md and by_part.png."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import BenchmarkError
from .plot import draw_breakdowns

OUTPUT_FILES = ("results.json", "report.md", "by_part.png")


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}"


def protocol_rows(results: dict[str, Any]) -> list[list[str]]:
    """Protocol x setting rows: protocol, setting, rank-1, rank-5, rank-10, mAP, queries."""
    rows = []
    for name, by_setting in results["protocols"].items():
        for setting, s in by_setting.items():
            if setting == "drop":
                rows.append(
                    [
                        name,
                        "drop (clean - occluded)",
                        _signed(s["rank1"]),
                        _signed(s["rank5"]),
                        _signed(s["rank10"]),
                        _signed(s["mAP"]),
                        "",
                    ]
                )
            else:
                rows.append(
                    [
                        name,
                        setting,
                        _pct(s["rank1"]),
                        _pct(s["rank5"]),
                        _pct(s["rank10"]),
                        _pct(s["mAP"]),
                        str(s["queries"]),
                    ]
                )
    return rows


def breakdown_rows(results: dict[str, Any], key: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a breakdown ("by_part" or "by_ratio"): rank-1 / mAP per setting, and the drop."""
    settings = [s for s in next(iter(results["protocols"].values())) if s not in ("drop",)]
    header = ["protocol", "part" if key == "by_part" else "occluded ratio", "queries"]
    header += [f"{s} {m}" for s in settings for m in ("rank-1", "mAP")]
    has_drop = "clean" in settings
    if has_drop:
        header += ["drop rank-1", "drop mAP"]
    rows = []
    for name, groups in results[key].items():
        for group, g in groups.items():
            row = [name, group, str(g["queries"])]
            for s in settings:
                scores = g if s == "occluded" else g[s]
                row += [_pct(scores["rank1"]), _pct(scores["mAP"])]
            if has_drop:
                drop = g.get("drop", {})
                row += [_signed(drop.get("rank1")), _signed(drop.get("mAP"))]
            rows.append(row)
    return header, rows


PROTOCOL_HEADER = ["protocol", "setting", "rank-1", "rank-5", "rank-10", "mAP", "queries"]


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def fmt(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def _markdown_table(header: list[str], rows: list[list[str]]) -> str:
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(header) + " |", rule]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def _title(results: dict[str, Any]) -> str:
    data, model = results["dataset"], results["model"]
    what = model.get("model") or model.get("features")
    q_split, g_split = data.get("query_split", "query"), data.get("gallery_split", "gallery")
    splits = "" if (q_split, g_split) == ("query", "gallery") else f" (splits {q_split} / {g_split})"
    return (
        f"{data['name']} ({data['path']}): {data['query_rows']} query / {data['gallery_rows']} gallery images"
        f"{splits}, features of {what}"
    )


def _skipped(results: dict[str, Any]) -> list[str]:
    """A line per protocol left out because the build does not know a label it needs."""
    return [f"protocol {name} not scored: {reason}" for name, reason in results.get("skipped_protocols", {}).items()]


def format_table(results: dict[str, Any]) -> str:
    """The printed summary: protocols, then the breakdowns (percentages)."""
    parts = [_title(results), *_skipped(results), "", _text_table(PROTOCOL_HEADER, protocol_rows(results))]
    for key, title in (("by_part", "By the query's occluded part"), ("by_ratio", "By the query's occluded ratio")):
        header, rows = breakdown_rows(results, key)
        parts += ["", f"{title} (rank-1 / mAP, %):", _text_table(header, rows)]
    return "\n".join(parts)


def format_markdown(results: dict[str, Any]) -> str:
    settings = results["settings"]
    lines = [
        f"# Occlusion benchmark: {results['dataset']['name']}",
        "",
        _title(results) + ".",
        "",
        *[f"- {line}" for line in _skipped(results)],
        *([""] if _skipped(results) else []),
        f"Test-time conventions: {results['conventions']}. Scores in %, as CAL computes them "
        "(`occluded_ccreid.evaluate_protocol`). Settings:",
        "",
        *[f"- `{name}`: {text}" for name, text in settings.items()],
        "",
        "## Protocols",
        "",
        _markdown_table(PROTOCOL_HEADER, protocol_rows(results)),
    ]
    for key, title, text in (
        (
            "by_part",
            "By the query's occluded part",
            "Each row evaluates the queries whose occluder covers that part "
            "(`none`: not occluded) against the whole gallery.",
        ),
        ("by_ratio", "By the query's occluded ratio", "Share of the person's pixels under the query's occluder."),
    ):
        header, rows = breakdown_rows(results, key)
        lines += ["", f"## {title}", "", text, "", _markdown_table(header, rows)]
    lines += ["", "![rank-1 and mAP by occluded part and ratio](by_part.png)", ""]
    return "\n".join(lines)


def write_outputs(out_dir: str | Path, results: dict[str, Any], overwrite: bool = False) -> list[Path]:
    """results.json, report.md and by_part.png in `out_dir`; existing ones only with `overwrite`."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BenchmarkError(f"--out {out} exists and is not a directory")
    existing = [name for name in OUTPUT_FILES if (out / name).exists()]
    if existing and not overwrite:
        raise BenchmarkError(f"--out {out} already holds {', '.join(existing)}; pass --overwrite or another --out")
    out.mkdir(parents=True, exist_ok=True)
    writers: dict[str, Callable[[Path], object]] = {
        "results.json": lambda p: p.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8"),
        "report.md": lambda p: p.write_text(format_markdown(results), encoding="utf-8"),
        "by_part.png": lambda p: draw_breakdowns(results).save(p, format="PNG"),
    }
    paths = []
    for name, write in writers.items():
        partial = out / f".{name}.partial"  # never a half-written file under the final name
        write(partial)
        os.replace(partial, out / name)
        paths.append(out / name)
    return paths


__all__ = ["OUTPUT_FILES", "format_markdown", "format_table", "write_outputs"]
