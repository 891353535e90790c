"""Render the Hub dataset card (`README.md` of a build) from the `dataset_card.md` template.

The YAML header carries what the Hub and `load_dataset` read: `configs` (data files per split),
`dataset_info` (features, split sizes, download and dataset sizes), license, provenance
(`source_datasets`, `annotations_creators`), task category, tags, size category and, with
`gated`, the Hub's gated-access fields.

Two shapes: a build's own card (config `default`, shards under `data/`), and the card of one
config of a multi-config repo (`render_card(..., config_name="prcc")`, shards under `prcc/`),
whose body holds the config's section between `<!-- occluded-ccreid:config NAME -->` markers so
that `builder.card_merge.merge_card` can put it into a repo card holding other configs without
touching them. A repo card names the terms of every config's source: `repo_terms` gives its
gated-access fields and the `LICENSE.md` its `license_link` points at, from the sources the merged
card lists.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from builder import __version__
from builder.report import RATIO_BINS, BuildReport, ShardEntry
from occluded_ccreid.features import CORE_COLUMNS
from occluded_ccreid.layout import LICENSE_NAME, shard_split
from occluded_ccreid.parts import PART_NAMES
from occluded_ccreid.sources import SourceLayout, get_source

FILL_TEXT = {
    "add": "The occluder is added to the image and saturates at white, as in the paper.",
    "white": "The image is blended towards white under the occluder.",
    "black": "The image is blended towards black under the occluder.",
    "mean": "The image is blended towards its own mean colour under the occluder.",
    "noise": "The image is blended towards uniform noise under the occluder.",
    "blur": "The image is blended towards a strongly blurred copy of itself under the occluder.",
    "texture": (
        "The occluder is filled with background pixels of another identity's image from the same "
        "source dataset, so it looks like scene clutter."
    ),
    "paste": "Person and object occluders are pasted with their own pixels, blended by their alpha.",
}
# What each occluder kind other than the paper's part occluder is, in the card's words.
KIND_TEXT = {
    "rectangle": (
        "**Rectangles** (Feng et al.'s baseline): a band over the top, bottom, left or right "
        "{rectangle_fraction} of the crop, placed without looking at the person."
    ),
    "person": (
        "**Other people** (as KPR occludes with other pedestrians): another identity's person from the same "
        "split (its part map > 0, edges softened by one average pooling), scaled to 50-100% of the crop's "
        "height, centred on a drawn point of the person's box and pasted with its own pixels; the donors are "
        "in `person_donors`, the one drawn in `occluders`."
    ),
    "objects": (
        "**Objects** (as BPBreID pastes Pascal VOC objects): one of {objects} RGBA cut-outs from the "
        "user's folder (sha256 of names and bytes `{objects_sha256}`), scaled to 25-60% of the crop's height, "
        "centred on a drawn point of the person's box, its alpha from the file; the file is in `occluders`."
    ),
}


def occluder_text(occlusion: dict) -> str:
    """The paragraphs on the build's occluder kinds (beyond the paper's), count and preset."""
    kinds = [k.strip() for k in occlusion["occluder"].split(",")]
    lines = [KIND_TEXT[k].format(**occlusion) for k in kinds if k in KIND_TEXT and kinds != ["rectangle"]]
    if len(kinds) > 1:
        lines.insert(0, f"Occluder kinds of this build: {', '.join(kinds)}; each occluder draws its kind among them.")
    low, high = occlusion.get("occluders", (1, 1))
    if high > 1:
        count = f"{low}" if low == high else f"{low}-{high} (drawn per image)"
        lines.append(
            f"**{count} occluders per occluded image**, drawn over each other in order: `occlusion_mask` "
            "is their union (1 - prod(1 - alpha)), the coverage band applies to it, and `occluders` lists "
            "each one (`occluded_part` and `pool_scale` are the first part occluder's)."
        )
    if occlusion.get("preset") == "occluded-duke":
        lines.append(
            "**Which rows are occluded: the occluded-duke preset**, as Occluded-Duke: every query, a tenth "
            "of the gallery (each row's own draw) and none of the other splits."
        )
    return "\n\n".join(lines)


TAGS = ["person-re-identification", "reid", "cloth-changing", "occlusion", "occluded-person-reid"]
PAPER_URL = "https://github.com/1024AILab/Occluded-Cloth-Changing-Person-Re-Identification"
PAPER_TITLE = "Occluded Cloth-Changing Person Re-Identification"
REPO_PRETTY_NAME = "Occluded cloth-changing person re-identification"
MULTI_SOURCE_LICENSE = "terms-of-use-of-the-source-datasets"
# Who made the labels: identities, cameras and outfits come from the source datasets' annotators;
# part maps, occluders and the columns describing them from models and this tool.
ANNOTATIONS_CREATORS = ["expert-generated", "machine-generated"]
GATED_PREFIX = "This dataset is derived from "  # how a prompt this tool wrote begins
LICENSE_HEADING = f"# Terms of use of {REPO_PRETTY_NAME.lower()} data"  # how a LICENSE.md this tool wrote begins


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _terms(layout: SourceLayout) -> str:
    return f"{layout.pretty_name} (terms: {layout.homepage})" if layout.homepage else layout.pretty_name


def gated_fields(sources: list[SourceLayout]) -> dict:
    """The Hub's gated-access YAML: users accept the terms of every source dataset before download."""
    names = _and([s.pretty_name for s in sources])
    their = "their" if len(sources) > 1 else "its"
    return {
        "extra_gated_prompt": (
            f"{GATED_PREFIX}{_and([_terms(s) for s in sources])}. Its images remain subject to the terms of use "
            f"of {names}, which restrict them to non-commercial research. Request access only if you have "
            f"obtained {names} from {their} authors and accepted {their} terms."
        ),
        "extra_gated_fields": {
            "Affiliation": "text",
            f"I have obtained {names} from {their} authors and accept {their} terms of use": "checkbox",
            "I will use this dataset for non-commercial research only": "checkbox",
        },
    }


def card_sources(header: dict) -> list[SourceLayout]:
    """The source datasets a (merged) card lists in `source_datasets` (`extended|prcc`), in order;
    configs pushed by other tools list none."""
    found = []
    for entry in header.get("source_datasets") or []:
        name = str(entry).removeprefix("extended|")
        try:
            found.append(get_source(name))
        except KeyError:
            continue  # not a source this tool knows: its terms are its pusher's to state
    return found


def license_text(sources: list[SourceLayout]) -> str:
    """`LICENSE.md` of a multi-config repo: the terms each source dataset's images remain under."""
    lines = [
        LICENSE_HEADING,
        "",
        "occluded-ccreid grants no rights over the images of this repository. Every config is derived from one "
        "source dataset, and its images remain subject to that dataset's terms of use, which generally restrict "
        "them to non-commercial research. Obtain the source dataset from its authors and accept its terms before "
        "using a config derived from it.",
        "",
    ]
    for layout in sources:
        where = f"[{layout.homepage}]({layout.homepage})" if layout.homepage else "the dataset's authors"
        lines += [f"## {layout.pretty_name}", "", f"Terms of use: see {where}.", ""]
        if layout.citation:
            lines += ["```bibtex", layout.citation.strip(), "```", ""]
    return "\n".join(lines)


def repo_terms(header: dict, gated: bool) -> tuple[dict, str]:
    """(YAML keys, LICENSE.md text) naming the terms of every source of a merged repo card `header`:
    the license link and, when the repo is gated (this push's `--gated`, or a prompt an earlier push
    of this tool wrote), the gated-access fields naming every source. A prompt someone wrote by
    hand is left as it is."""
    sources = card_sources(header)
    keys: dict = {"license": "other", "license_name": MULTI_SOURCE_LICENSE, "license_link": LICENSE_NAME}
    ours = str(header.get("extra_gated_prompt", "")).startswith(GATED_PREFIX)
    if sources and (gated or ours):
        keys.update(gated_fields(sources))
    return keys, license_text(sources)


def template_text() -> str:
    """The card template: packaged in the wheel, or at the repository root in a source checkout."""
    packaged = resources.files("builder").joinpath("dataset_card.md")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    return (Path(__file__).resolve().parent.parent / "dataset_card.md").read_text(encoding="utf-8")


def size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return label
    return "1M<n<10M"


def split_sizes(folder: Path, shards: dict[str, ShardEntry]) -> tuple[dict[str, int], dict[str, int]]:
    """({split: Parquet bytes on disk}, {split: num_bytes}) of a build's shards.

    `num_bytes` is what `datasets` means by it (`SplitInfo.num_bytes`, summed by its writers as
    `pa.Table.nbytes`): the uncompressed in-memory Arrow size, read back one row group at a time.
    """
    disk: dict[str, int] = {}
    memory: dict[str, int] = {}
    for rel in sorted(shards):
        split = shard_split(rel) or ""
        path = folder / rel
        disk[split] = disk.get(split, 0) + path.stat().st_size
        parquet = pq.ParquetFile(path)
        nbytes = sum(parquet.read_row_group(i).nbytes for i in range(parquet.num_row_groups))
        memory[split] = memory.get(split, 0) + nbytes
    return disk, memory


def card_data(
    report: BuildReport,
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
    config: dict = {"config_name": name, "data_files": [{"split": s, "path": f"{folder}/{s}-*"} for s in report.splits]}
    if default and config_name:
        config["default"] = True
    license_fields = (
        {"license_name": MULTI_SOURCE_LICENSE, "license_link": LICENSE_NAME}
        if config_name
        else {"license_name": f"{layout.name}-terms-of-use", "license_link": layout.homepage or None}
    )
    data = DatasetCardData(
        pretty_name=REPO_PRETTY_NAME if config_name else f"Occluded-{layout.pretty_name}",
        license="other",
        **license_fields,
        task_categories=["image-feature-extraction"],
        annotations_creators=ANNOTATIONS_CREATORS,
        source_datasets=[f"extended|{layout.name}"],
        tags=TAGS,
        size_categories=[size_category(report.num_rows)],
        configs=[config],
        **(gated_fields([layout]) if gated else {}),
    )
    splits = SplitDict()
    for split, stats in report.splits.items():
        splits.add(SplitInfo(name=split, num_bytes=memory.get(split, 0), num_examples=stats.num_rows))
    info = DatasetInfo(
        features=features, splits=splits, download_size=sum(disk.values()), dataset_size=sum(memory.values())
    )
    DatasetInfosDict({name: info}).to_dataset_card_data(data)
    return data


def shard_text(plan: dict) -> str:
    """One sentence on how the Parquet shards were cut (builder.shards; `shard_plan` in the report)."""
    if plan.get("rule") == "rows":
        return (
            f"Each split is stored in Parquet shards of {plan['shard_size']} consecutive source images "
            "(in path order; skipped images leave their shard shorter)."
        )
    return (
        f"Each split is stored in Parquet shards of consecutive source images (in path order), cut before "
        f"any image was read: at most {plan['max_shard_bytes'] / 1e6:.0f} MB each (bounded from pixel counts), "
        f"and for a split of {plan['readers'] * plan['min_rows_per_shard']} images or more a multiple of "
        f"{plan['readers']} shards with equal numbers of images, so "
        "`datasets.distributed.split_dataset_by_node` gives each of 8, 16 or 32 nodes whole shards."
    )


def _model_text(parser: dict) -> str:
    """The parsing network, its checkpoint and where the weights come from, in words."""
    checkpoint = parser.get("checkpoint") or {}
    if "repo_id" in checkpoint:
        pinned = [f"revision `{checkpoint['revision']}`"] if checkpoint.get("revision") else []
        pinned += [f"sha256 `{checkpoint['sha256']}`"] if checkpoint.get("sha256") else []
        weights = (
            f"the weights `{checkpoint['filename']}` from the Hub repository `{checkpoint['repo_id']}`"
            + (f" ({', '.join(pinned)})" if pinned else "")
            + (f", {checkpoint['provenance']}" if checkpoint.get("provenance") else "")
        )
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
    report: BuildReport,
    layout: SourceLayout,
    features: Features,
    folder: Path,
    repo_id: str | None = None,
    preview: str | None = None,
    config_name: str | None = None,
    default: bool = False,
    gated: bool = False,
) -> str:
    """The card of the build in `folder` (its `build_report.json` as `report`, e.g. from `read_report`).

    `config_name` None: the build's own card. Otherwise the card of a repo holding this build as
    config `config_name` (shards and `preview` under `<config_name>/`), to merge with `merge_card`.
    """
    parser = report.parser
    if parser.get("kind") == "model":
        height, width = parser["parse_size"]
        size = (
            f"each crop fitted into {height}x{width} with its aspect ratio kept"
            if parser.get("keep_aspect")
            else f"every crop resized to {height}x{width}"
        )
        precision = f", {parser['precision']} autocast" if "precision" in parser else ""
        parser_text = f"Part maps come from {_model_text(parser)} (inference: {size}{precision})."
    else:
        parser_text = "Part maps were precomputed by a human-parsing model and read from disk."
    splits = report.splits
    totals = {name: sum(s.part_counts.get(name, 0) for s in splits.values()) for name in PART_NAMES}
    histogram = [sum(s.ratio_histogram[i] for s in splits.values()) for i in range(RATIO_BINS)]
    disk, memory = split_sizes(Path(folder), report.shards)
    context: dict[str, Any] = {
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
        "pool_scales": ", ".join(str(s) for s in report.occlusion["pool_scales"]),
        "fill_text": FILL_TEXT[report.occlusion["fill"]],
        "occluder_text": occluder_text(report.occlusion),
        "occlusion": report.occlusion,
        "seed": report.seed,
        "tool_version": __version__,
        "splits": [
            {
                "name": n,
                "num_rows": s.num_rows,
                "num_shards": s.num_shards,
                "occluded": s.occluded,
                "out_of_band": s.out_of_band,
                "ratio_mean": f"{s.ratio_summary()['mean']:.3f}",
                "parquet_mb": f"{disk.get(n, 0) / 1e6:.1f}",
                "memory_mb": f"{memory.get(n, 0) / 1e6:.1f}",
            }
            for n, s in splits.items()
        ],
        "skipped": len(report.skipped),
        "part_counts": list(totals.items()),
        "ratio_bins": [(f"{i / RATIO_BINS:.1f}-{(i + 1) / RATIO_BINS:.1f}", c) for i, c in enumerate(histogram)],
        "protocols": layout.protocols,
        "repo_id": repo_id or f"<namespace>/occluded-{layout.name}",
        "preview": preview,
        "shard_text": shard_text(report.shard_plan) if report.shard_plan else "",
        "config_name": config_name,
        "gated": gated,
    }
    data = card_data(report, layout, features, disk, memory, config_name=config_name, default=default, gated=gated)
    return str(DatasetCard.from_template(data, template_str=template_text(), **context))
