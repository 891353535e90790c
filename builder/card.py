"""Render the Hub dataset card (`README.md` of a build) from the `dataset_card.md` template.

The YAML header carries what the Hub and `load_dataset` read: `configs` (data files per split),
`dataset_info` (features and split sizes), license, task category, tags and size category.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from datasets import DatasetInfo, Features, SplitDict, SplitInfo
from datasets.info import DatasetInfosDict
from huggingface_hub import DatasetCard, DatasetCardData

from builder import __version__
from builder.report import RATIO_BINS, BuildReport
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


def card_data(report: BuildReport, layout: SourceLayout, features: Features, shard_bytes: dict[str, int]) -> DatasetCardData:
    data = DatasetCardData(
        pretty_name=f"Occluded-{layout.pretty_name}",
        license="other",
        license_name=f"{layout.name}-terms-of-use",
        license_link=layout.homepage,
        task_categories=["image-feature-extraction"],
        tags=TAGS,
        size_categories=[size_category(report.num_rows)],
        configs=[{
            "config_name": "default",
            "data_files": [{"split": s, "path": f"data/{s}-*"} for s in report.splits],
        }],
    )
    splits = SplitDict()
    for name, stats in report.splits.items():
        size = sum(b for path, b in shard_bytes.items() if Path(path).name.startswith(f"{name}-"))
        splits.add(SplitInfo(name=name, num_bytes=size, num_examples=stats.num_rows))
    DatasetInfosDict({"default": DatasetInfo(features=features, splits=splits)}).to_dataset_card_data(data)
    return data


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
    report: BuildReport,
    layout: SourceLayout,
    features: Features,
    shard_bytes: dict[str, int],
    repo_id: str | None = None,
    preview: str | None = None,
) -> str:
    parser = report.parser
    if parser.get("kind") == "model":
        height, width = parser["parse_size"]
        size = (f"each crop fitted into {height}x{width} with its aspect ratio kept" if parser.get("keep_aspect")
                else f"every crop resized to {height}x{width}")
        precision = f", {parser['precision']} autocast" if "precision" in parser else ""
        parser_text = f"Part maps come from {_model_text(parser)} (inference: {size}{precision})."
    else:
        parser_text = "Part maps were precomputed by a human-parsing model and read from disk."
    totals = {name: sum(s.part_counts[name] for s in report.splits.values()) for name in PART_NAMES}
    histogram = [sum(s.ratio_histogram[i] for s in report.splits.values()) for i in range(RATIO_BINS)]
    context = {
        "pretty_name": f"Occluded-{layout.pretty_name}",
        "source_name": layout.pretty_name,
        "source_homepage": layout.homepage,
        "source_citation": layout.citation,
        "parser_text": parser_text,
        "pool_scales": ", ".join(str(s) for s in report.occlusion["pool_scales"]),
        "fill_text": FILL_TEXT[report.occlusion["fill"]],
        "occlusion": report.occlusion,
        "seed": report.seed,
        "tool_version": __version__,
        "splits": [
            {"name": n, "num_rows": s.num_rows, "occluded": s.occluded, "out_of_band": s.out_of_band,
             "ratio_mean": f"{s.ratio_summary()['mean']:.3f}"}
            for n, s in report.splits.items()
        ],
        "skipped": len(report.skipped),
        "part_counts": list(totals.items()),
        "ratio_bins": [(f"{i / RATIO_BINS:.1f}-{(i + 1) / RATIO_BINS:.1f}", c) for i, c in enumerate(histogram)],
        "protocols": layout.protocols,
        "repo_id": repo_id or f"<namespace>/occluded-{layout.name}",
        "preview": preview,
    }
    data = card_data(report, layout, features, shard_bytes)
    return str(DatasetCard.from_template(data, template_str=template_text(), **context))
