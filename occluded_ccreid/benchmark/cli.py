"""The benchmark command line.

python -m occluded_ccreid.benchmark --dataset PATH_OR_REPO [--config NAME] [--query-split Q --gallery-split G]
    (--model HF_ID_OR_DIR | --features module:function) [--device] [--batch-size] [--workers | --processes N]
    [--precision]
    [--protocols a,b] [--ratio-bins 0.1,0.2,...] [--out DIR [--overwrite]] [--no-progress]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any

from . import BenchmarkError
from .metrics import DEFAULT_RATIO_EDGES, SETTINGS, benchmark_metrics, ratio_bins, settings_of, unknown_labels

CONVENTIONS = "features of the image and of its horizontal flip summed, L2-normalised; cosine distance (as CAL)"


def run_benchmark(
    dataset: str,
    model: str | None = None,
    features: str | None = None,
    config: str | None = None,
    device: str = "auto",
    batch_size: int = 32,
    precision: str = "fp32",
    protocols: Sequence[str] | None = None,
    ratio_edges: Sequence[float] = DEFAULT_RATIO_EDGES,
    progress: bool = True,
    workers: int | None = None,
    query_split: str = "query",
    gallery_split: str = "gallery",
    processes: int | None = None,
) -> dict[str, Any]:
    """Extract features of the query and gallery splits once and score every protocol; results.json's dict.

    Without `protocols`, a protocol whose labels the build does not know (all -1 in a split: LaST's
    cameras, a manifest without camid / clothes_id) is left out and listed under
    "skipped_protocols"; a protocol asked for by name is refused instead.
    """
    from ..evaluation import protocols as dataset_protocols
    from .features import make_extractor
    from .reading import check_label_columns, check_processes, decoding, extract_split, open_dataset

    if batch_size < 1 or (workers is not None and workers < 1):
        raise BenchmarkError(f"--batch-size and --workers must be >= 1, got {batch_size} and {workers}")
    check_processes(processes, callable_features=features is not None)
    ratio_bins(ratio_edges)  # refused before any work
    opened = open_dataset(dataset, config, query_split, gallery_split)
    available = dataset_protocols(opened.name)
    if not available:
        raise BenchmarkError(f"{opened.name} declares no evaluation protocol, so there is nothing to score")
    wanted = list(protocols) if protocols else list(available)
    if unknown := [p for p in wanted if p not in available]:
        raise BenchmarkError(
            f"unknown protocol(s) {', '.join(unknown)} for {opened.name}; it has {', '.join(available)}"
        )
    chosen = {p: available[p] for p in wanted}
    label_columns = check_label_columns(opened, dataset, chosen)  # before the model loads
    extractor = make_extractor(model, features, device=device, precision=precision, progress=progress)
    skipped: dict[str, str] = {}
    split_features = {}
    decoder = decoding(extractor, workers, processes)  # one for both splits: worker processes start once
    with contextlib.closing(decoder):
        for role in ("query", "gallery"):
            name = opened.split_names[role]
            split_features[role] = extract_split(
                opened.splits[role],
                opened.image_columns,
                extractor,
                batch_size,
                total=opened.num_rows[role],
                desc=name,
                progress=progress,
                label_columns=label_columns,
                decoder=decoder,
            )
            # Checked after each split, so an unusable query split stops before the gallery is read.
            for protocol_name, protocol in list(chosen.items()):
                if missing := unknown_labels(protocol, split_features[role].labels):
                    reason = f"{' and '.join(missing)} unknown (-1) in every row of split {name}"
                    if protocols:
                        raise BenchmarkError(f"protocol {protocol_name} of {opened.name} cannot be scored: {reason}")
                    skipped[protocol_name] = reason
                    del chosen[protocol_name]
            if not chosen:
                raise BenchmarkError(
                    f"no protocol of {opened.name} can be scored on {dataset}: "
                    + "; ".join(f"{p}: {r}" for p, r in skipped.items())
                )
    metrics = benchmark_metrics(
        split_features["query"], split_features["gallery"], chosen, opened.image_columns, ratio_edges
    )
    settings = settings_of(opened.image_columns)
    return {
        "dataset": {
            "name": opened.name,
            "path": str(dataset),
            "config": config,
            "query_split": opened.split_names["query"],
            "gallery_split": opened.split_names["gallery"],
            "query_rows": len(split_features["query"].labels["pid"]),
            "gallery_rows": len(split_features["gallery"].labels["pid"]),
            "clean_images": "clean_image" in opened.image_columns,
        },
        "model": extractor.describe(),
        "conventions": CONVENTIONS,
        "settings": {name: SETTINGS[name][2] for name in settings},
        "ratio_bins": sorted(float(e) for e in ratio_edges),
        **metrics,
        **({"skipped_protocols": skipped} if skipped else {}),
    }


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m occluded_ccreid.benchmark",
        description="Score a re-id model on an occluded CC-ReID build: every protocol, occluded vs clean, "
        "and rank-1 / mAP by the query's occluded part and occluded ratio.",
    )
    parser.add_argument("--dataset", required=True, help="a build folder or a Hub dataset repo id")
    parser.add_argument("--config", help="dataset config name (load_dataset's name=)")
    parser.add_argument(
        "--query-split",
        default="query",
        help="the split of query images (default query; DeepChange / LaST: validation_query)",
    )
    parser.add_argument(
        "--gallery-split",
        default="gallery",
        help="the split of gallery images (default gallery; DeepChange / LaST: validation_gallery)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="a transformers image model: Hub id or save_pretrained folder")
    source.add_argument(
        "--features",
        metavar="MODULE:FUNCTION",
        help="your function, importable from the working directory: list of RGB PIL images -> N x D",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1 ... (--model)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default 32)")
    decode = parser.add_mutually_exclusive_group()
    decode.add_argument(
        "--workers",
        type=int,
        help="image decoding threads (default: the cores, at most 8; --model on CUDA: all cores but one)",
    )
    decode.add_argument(
        "--processes",
        type=int,
        metavar="N",
        help="decode in N worker processes instead of threads (--model): they share no Python lock "
        "with the forward pass, for GPU hosts where the decoding threads contend for it",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="autocast dtype of the forward pass (--model; fp16: CUDA only)",
    )
    parser.add_argument("--protocols", help="comma-separated protocols to score (default: all of the dataset's)")
    parser.add_argument(
        "--ratio-bins",
        type=_floats,
        default=list(DEFAULT_RATIO_EDGES),
        help="occluded-ratio bin edges (default 0.1,0.2,0.3,0.4,0.5)",
    )
    parser.add_argument("--out", help="folder for results.json, report.md and by_part.png")
    parser.add_argument("--overwrite", action="store_true", help="replace those files if --out already has them")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .report import format_table, write_outputs

    try:
        results = run_benchmark(
            args.dataset,
            model=args.model,
            features=args.features,
            config=args.config,
            device=args.device,
            batch_size=args.batch_size,
            precision=args.precision,
            protocols=[p.strip() for p in args.protocols.split(",") if p.strip()] if args.protocols else None,
            ratio_edges=args.ratio_bins,
            progress=not args.no_progress,
            workers=args.workers,
            query_split=args.query_split,
            gallery_split=args.gallery_split,
            processes=args.processes,
        )
        print(format_table(results))
        if args.out:
            for path in write_outputs(args.out, results, overwrite=args.overwrite):
                print(f"wrote {path}")
    except BenchmarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: the decoding threads or processes are stopped on the way out
        print("interrupted (SIGINT); the run did not finish", file=sys.stderr)
        return 130
    return 0


__all__ = ["build_parser", "main", "run_benchmark"]
