"""Render the Hub dataset card (`README.md` of a build) from the `dataset_card.md` template.

The YAML header carries what the Hub and `load_dataset` read: `configs` (data files per split),
`dataset_info` (features, split sizes, download and dataset sizes), license, provenance
(`source_datasets`, `annotations_creators`), task category, tags, size category and, with
`gated`, the Hub's gated-access fields.

Two shapes: a build's own card (config `default`, shards under `data/`), and the card of one
config of a multi-config repo (`render_card(..., config_name="prcc")`, shards under `prcc/`),
whose body holds the config's section between `<!-- occluded-ccreid:config NAME -->` markers so
that `merge_card` can put it into a repo card holding other configs without touching them.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from builder import __version__
from builder.report import RATIO_BINS
from occluded_ccreid.features import CORE_COLUMNS
from occluded_ccreid.parts import PART_NAMES
from occluded_ccreid.sources import SourceLayout

FILL_TEXT = {
    "add": "The occluder is added to the image and saturates at white, as in the paper.",
    "white": "The image is blended towards white under the occluder.",
    "black": "The image is blended towards black under the occluder.",
    "mean": "The image is blended towards its own mean colour under the occluder.",
    "noise": "The image is blended towards uniform noise under the occluder.",
    "blur": "The image is blended towards a strongly blurred copy of itself under the occluder.",
    "texture": ("The occluder is filled with background pixels of another identity's image from the same "
                "source dataset, so it looks like scene clutter."),
}
TAGS = ["person-re-identification", "reid", "cloth-changing", "occlusion", "occluded-person-reid"]
PAPER_URL = "https://github.com/1024AILab/Occluded-Cloth-Changing-Person-Re-Identification"
PAPER_TITLE = "Occluded Cloth-Changing Person Re-Identification"
REPO_PRETTY_NAME = "Occluded cloth-changing person re-identification"
MULTI_SOURCE_LICENSE = "terms-of-use-of-the-source-datasets"


def gated_fields(source_names: list[str]) -> dict:
    """The Hub's gated-access YAML: users must accept the source datasets' terms before download."""
    sources = ", ".join(source_names)
    return {
        "extra_gated_prompt": (
            f"This dataset is derived from {sources}. Its images remain subject to the terms of use of "
            f"{sources}, which restrict them to non-commercial research. Request access only if you "
            "have obtained the source dataset from its authors and accepted their terms."
        ),
        "extra_gated_fields": {
            "Affiliation": "text",
            f"I have obtained {sources} from its authors and accept its terms of use": "checkbox",
            "I will use this dataset for non-commercial research only": "checkbox",
        },
    }


def template_text() -> str:
    """The card template: packaged in the wheel, or at the repository root in a source checkout."""
    packaged = resources.files("builder").joinpath("dataset_card.md")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "dataset_card.md").read_text(encoding="utf-8")


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def split_sizes(folder: Path, shards: dict[str, dict]) -> tuple[dict[str, int], dict[str, int]]:
    """({split: Parquet bytes on disk}, {split: num_bytes}) of a build's shards.

    `num_bytes` is what `datasets` means by it (`SplitInfo.num_bytes`, summed by its writers as
    `pa.Table.nbytes`): the uncompressed in-memory Arrow size, read back one row group at a time.
    """
    disk: dict[str, int] = {}
    memory: dict[str, int] = {}
    for rel in sorted(shards):
        split = Path(rel).name.rsplit("-", 3)[0]
        path = folder / rel
        disk[split] = disk.get(split, 0) + path.stat().st_size
        parquet = pq.ParquetFile(path)
        nbytes = sum(parquet.read_row_group(i).nbytes for i in range(parquet.num_row_groups))
        memory[split] = memory.get(split, 0) + nbytes
    return disk, memory


def card_data(
    report: dict,
    layout: SourceLayout,
    features: Features,
    disk: dict[str, int],
    memory: dict[str, int],
    config_name: str | None = None,
    default: bool = False,
    gated: bool = False,
) -> DatasetCardData:
    """The YAML header. `config_name` None: a build's own card (config `default` under `data/`)."""
    name = config_name or "default"
    folder = config_name or "data"
    config: dict[str, Any] = {"config_name": name,
                              "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in report["splits"]]}
    if default and config_name:
        config["default"] = True
    license_fields = (
        {"license_name": MULTI_SOURCE_LICENSE} if config_name
        else {"license_name": f"{layout.name}-terms-of-use", "license_link": layout.homepage or None}
    )
    data = DatasetCardData(
        pretty_name=REPO_PRETTY_NAME if config_name else f"Occluded-{layout.pretty_name}",
        license="other",
        **license_fields,
        task_categories=["image-feature-extraction"],
        annotations_creators=["machine-generated"],
        source_datasets=[f"extended|{layout.name}"],
        tags=TAGS,
        size_categories=[size_category(report["num_rows"])],
        configs=[config],
        **(gated_fields([layout.pretty_name]) if gated else {}),
    )
    splits = SplitDict()
    for split, stats in report["splits"].items():
        splits.add(SplitInfo(name=split, num_bytes=memory.get(split, 0), num_examples=stats["num_rows"]))
    info = DatasetInfo(features=features, splits=splits, download_size=sum(disk.values()),
                       dataset_size=sum(memory.values()))
    DatasetInfosDict({name: info}).to_dataset_card_data(data)
    return data


def shard_text(plan: dict) -> str:
    """One sentence on how the Parquet shards were cut (builder.shards; `shard_plan` in the report)."""
    if plan.get("rule") == "rows":
        return (f"Each split is stored in Parquet shards of {plan['shard_size']} consecutive source images "
                "(in path order; skipped images leave their shard shorter).")
    return (f"Each split is stored in Parquet shards of consecutive source images (in path order), cut before "
            f"any image was read: at most {plan['max_shard_bytes'] / 1e6:.0f} MB each (bounded from pixel counts), "
            f"and for a split of {plan['readers'] * plan['min_rows_per_shard']} images or more a multiple of "
            f"{plan['readers']} shards with equal numbers of images, so "
            "`datasets.distributed.split_dataset_by_node` gives each of 8, 16 or 32 nodes whole shards.")


def _model_text(parser: dict) -> str:
    """The parsing network, its checkpoint and where the weights come from, in words."""
    checkpoint = parser.get("checkpoint") or {}
    if "repo_id" in checkpoint:
        pinned = [f"revision `{checkpoint['revision']}`"] if checkpoint.get("revision") else []
        pinned += [f"sha256 `{checkpoint['sha256']}`"] if checkpoint.get("sha256") else []
        weights = (f"the weights `{checkpoint['filename']}` from the Hub repository `{checkpoint['repo_id']}`"
                   + (f" ({', '.join(pinned)})" if pinned else "")
                   + (f", {checkpoint['provenance']}" if checkpoint.get("provenance") else ""))
    elif "path" in checkpoint:
        weights = f"the weights file `{Path(checkpoint['path']).name}` (sha256 `{checkpoint.get('sha256', '?')}`)"
    else:
        weights = f"the checkpoint `{parser['model']}`"
    alias = f"`--model {parser['alias']}`: " if parser.get("alias") else ""
    architecture = parser.get("architecture", "a `transformers` segmentation model")
    labels = parser.get("labels", {})
    label_set = f"{parser['label_set']} labels" if parser.get("label_set") else "labels"
    names = ", ".join(str(v) for _, v in sorted(labels.items(), key=lambda kv: int(kv[0])))
    return f"{alias}{architecture} with {weights}; {label_set}: {names}"


def render_card(
    report: dict,
    layout: SourceLayout,
    features: Features,
    folder: Path,
    repo_id: str | None = None,
    preview: str | None = None,
    config_name: str | None = None,
    default: bool = False,
    gated: bool = False,
) -> str:
    """The card of the build in `folder` (its `build_report.json` as `report`).

    `config_name` None: the build's own card. Otherwise the card of a repo holding this build as
    config `config_name` (shards and `preview` under `<config_name>/`), to merge with `merge_card`.
    """
    parser = report["parser"]
    if parser.get("kind") == "model":
        height, width = parser["parse_size"]
        size = (f"each crop fitted into {height}x{width} with its aspect ratio kept" if parser.get("keep_aspect")
                else f"every crop resized to {height}x{width}")
        precision = f", {parser['precision']} autocast" if "precision" in parser else ""
        parser_text = f"Part maps come from {_model_text(parser)} (inference: {size}{precision})."
    else:
        parser_text = "Part maps were precomputed by a human-parsing model and read from disk."
    splits = report["splits"]
    totals = {name: sum(s["part_counts"][name] for s in splits.values()) for name in PART_NAMES}
    histogram = [sum(s["ratio_histogram"][i] for s in splits.values()) for i in range(RATIO_BINS)]
    disk, memory = split_sizes(Path(folder), report["shards"])
    context = {
        "pretty_name": f"Occluded-{layout.pretty_name}",
        "repo_pretty_name": REPO_PRETTY_NAME,
        "paper_url": PAPER_URL,
        "paper_title": PAPER_TITLE,
        "source_name": layout.pretty_name,
        "source_homepage": layout.homepage,
        "source_citation": layout.citation,
        "source_notes": layout.notes,
        "extra_columns": [name for name in features if name not in CORE_COLUMNS and name != "clean_image"],
        "parser_text": parser_text,
        "pool_scales": ", ".join(str(s) for s in report["occlusion"]["pool_scales"]),
        "fill_text": FILL_TEXT[report["occlusion"]["fill"]],
        "occlusion": report["occlusion"],
        "seed": report["seed"],
        "tool_version": __version__,
        "splits": [
            {"name": n, "num_rows": s["num_rows"], "num_shards": s["num_shards"], "occluded": s["occluded"],
             "out_of_band": s["out_of_band"], "ratio_mean": f"{s['occluded_ratio']['mean']:.3f}",
             "parquet_mb": f"{disk.get(n, 0) / 1e6:.1f}", "memory_mb": f"{memory.get(n, 0) / 1e6:.1f}"}
            for n, s in splits.items()
        ],
        "skipped": len(report["skipped"]),
        "part_counts": list(totals.items()),
        "ratio_bins": [(f"{i / RATIO_BINS:.1f}-{(i + 1) / RATIO_BINS:.1f}", c) for i, c in enumerate(histogram)],
        "protocols": layout.protocols,
        "repo_id": repo_id or f"<namespace>/occluded-{layout.name}",
        "preview": preview,
        "shard_text": shard_text(report["shard_plan"]) if report.get("shard_plan") else "",
        "config_name": config_name,
        "gated": gated,
    }
    data = card_data(report, layout, features, disk, memory, config_name=config_name, default=default, gated=gated)
    return str(DatasetCard.from_template(data, template_str=template_text(), **context))


# ---------------------------------------------------------------------------------------------
# Merging one config's card into a repo card that may hold other configs
# ---------------------------------------------------------------------------------------------

CONFIGS_END = "<!-- occluded-ccreid:configs-end -->"
_SECTION = "<!-- occluded-ccreid:config {name} -->"
_SECTION_END = "<!-- occluded-ccreid:config-end {name} -->"
_MERGED_LISTS = ("configs", "dataset_info")  # one entry per config: merged by config name
_TOP_KEY = re.compile(r"^[^\s#-][^:]*:")


class CardMergeError(ValueError):
    """The repo's card cannot be merged (its YAML header does not parse as the Hub writes it)."""


def split_card(text: str) -> tuple[str, str]:
    """(YAML header without the '---' lines, body) of a card; ("", text) when it has no header."""
    if not text.startswith("---"):
        return "", text
    end = text.find("\n---", 3)
    if end < 0:
        raise CardMergeError("the YAML header opened by '---' is never closed")
    body_start = text.find("\n", end + 4)
    return text[3:end].strip("\n"), text[body_start + 1:] if body_start >= 0 else ""


def _blocks(header: str) -> dict[str, str]:
    """Top-level YAML blocks, in order: key -> its text (the key's line and its indented lines)."""
    blocks: dict[str, str] = {}
    key = None
    for line in header.splitlines(keepends=True):
        if _TOP_KEY.match(line):
            key = line.split(":", 1)[0].strip()
            blocks[key] = line
        elif key is not None:
            blocks[key] += line
        elif line.strip():
            raise CardMergeError(f"unexpected line {line.strip()!r} before the first key of the YAML header")
    return blocks


def _entries(block: str) -> list[tuple[str, str]]:
    """(config_name, text) of each entry of a `configs:` / `dataset_info:` block, text as written.

    A single entry written as a mapping (datasets does so for one config) becomes a list entry by
    turning its first line's indent into '- ': the other lines keep their bytes.
    """
    lines = block.splitlines(keepends=True)[1:]
    if lines and lines[0].startswith("  ") and not lines[0].startswith("  -"):
        lines[0] = "- " + lines[0][2:]
    entries: list[str] = []
    for line in lines:
        if line.startswith("- ") or not entries:
            entries.append(line)
        else:
            entries[-1] += line
    named = []
    for text in entries:
        parsed = yaml.safe_load(text)
        item = parsed[0] if isinstance(parsed, list) and parsed else {}
        named.append((str(item.get("config_name", "default")) if isinstance(item, dict) else "default", text))
    return named


def _is_default(entry: str) -> bool:
    return re.search(r"(?m)^  default: true$", entry) is not None


def _dump(key: str, value) -> str:
    return yaml.safe_dump({key: value}, sort_keys=False, allow_unicode=True)


def merge_card(existing: str | None, new: str, config_name: str, default: bool = False) -> str:
    """The repo card with `new` (a card rendered for `config_name` alone) merged into `existing`.

    YAML header: the `configs` and `dataset_info` entries of other configs keep their exact text
    (only a `default: true` line is dropped from another config's entry when `default` moves the
    default here); this config's entries are replaced or appended, and a config that was the
    default stays the default. List-valued keys (tags,
    source datasets, ...) become the union; other keys take the new card's value, except the
    gated-access fields, which an earlier `--gated` push set and a later push keeps.
    Body: this config's marked section replaces its old one, or is inserted before the end
    marker; everything else of the existing body is kept. An existing card without the markers
    (e.g. of a single-config push) gets the new card's body.
    """
    new_header, new_body = split_card(new)
    new_blocks = _blocks(new_header)
    if existing is None:
        return new
    try:
        old_header, old_body = split_card(existing)
        old_blocks = _blocks(old_header)
        old_values = yaml.safe_load(old_header) or {} if old_header else {}
    except yaml.YAMLError as exc:
        raise CardMergeError(f"the repo card's YAML header does not parse ({' '.join(str(exc).split())})") from exc
    new_values = yaml.safe_load(new_header)
    merged: dict[str, str] = {}
    for key in [*old_blocks, *(k for k in new_blocks if k not in old_blocks)]:
        if key in _MERGED_LISTS:
            entries = _entries(old_blocks[key]) if key in old_blocks else []
            mine = _entries(new_blocks[key])[0][1] if key in new_blocks else None
            texts, placed = [], False
            for name, text in entries:
                if name == config_name:
                    if mine is not None and not placed:
                        if key == "configs" and _is_default(text) and not _is_default(mine):
                            mine = mine.rstrip("\n") + "\n  default: true\n"  # stays the default until moved
                        texts.append(mine)
                        placed = True
                    continue
                if default and key == "configs":
                    text = re.sub(r"(?m)^  default: true\n", "", text)
                texts.append(text)
            if mine is not None and not placed:
                texts.append(mine)
            merged[key] = f"{key}:\n" + "".join(t if t.endswith("\n") else t + "\n" for t in texts)
        elif key not in new_blocks:  # only the old card has it (extra_gated_* included): kept as written
            merged[key] = old_blocks[key]
        elif isinstance(new_values[key], list) and isinstance(old_values.get(key), list):
            union = list(old_values[key]) + [v for v in new_values[key] if v not in old_values[key]]
            merged[key] = old_blocks[key] if union == old_values[key] else _dump(key, union)
        else:
            merged[key] = new_blocks[key]
    header = "".join(t if t.endswith("\n") else t + "\n" for t in merged.values())
    yaml.safe_load(header)  # a merge that does not parse is a bug: fail here, never on the Hub
    return f"---\n{header}---\n{_merge_body(old_body, new_body, config_name)}"


def _section(body: str, name: str) -> tuple[int, int] | None:
    start, end = body.find(_SECTION.format(name=name)), body.find(_SECTION_END.format(name=name))
    if start < 0 or end < start:
        return None
    return start, end + len(_SECTION_END.format(name=name))


def _merge_body(old: str, new: str, name: str) -> str:
    span = _section(new, name)
    if span is None or CONFIGS_END not in old:
        return new
    section = new[span[0]:span[1]]
    old_span = _section(old, name)
    if old_span is not None:
        return old[:old_span[0]] + section + old[old_span[1]:]
    at = old.index(CONFIGS_END)
    return old[:at] + section + "\n\n" + old[at:]
