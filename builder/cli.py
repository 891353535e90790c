"""The `builder` command: `builder build`, `builder push`, `builder verify`, `builder preview`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from builder.errors import DISK_FULL, BuildError, disk_full_message
from builder.publish import PushError
from builder.verify import BuildFolderError
from occluded_ccreid.sources import source_names


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that can add its arguments when it first parses (`add_arguments=`).

    The build options take their choices and defaults from occluded_ccreid.occlusion, which imports torch
    (~1.5 s): they are added only once `build` is chosen, so `push` and `preview` never import it.
    """

    def __init__(self, *args, add_arguments=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._add_arguments = add_arguments

    def parse_known_args(self, args=None, namespace=None):
        if self._add_arguments is not None:
            add, self._add_arguments = self._add_arguments, None
            add(self)
        return super().parse_known_args(args, namespace)


def _size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW such as 512x256, got {text!r}") from None
    return height, width


def _add_build(commands) -> None:
    commands.add_parser(
        "build",
        help="build an occluded dataset folder from a source download (PRCC, LTCC, "
        "VC-Clothes, DeepChange, LaST) or a manifest file",
        add_arguments=_build_arguments,
    )


def _build_arguments(p: argparse.ArgumentParser) -> None:
    from builder.config import DEFAULT_PARSE_SIZE
    from occluded_ccreid.occlusion import (
        DEFAULT_MIN_COVERAGE,
        DEFAULT_RECTANGLE_FRACTION,
        FILLS,
        OCCLUDERS,
        PRESETS,
    )

    p.add_argument("dataset", choices=source_names(), help="source dataset layout")
    p.add_argument(
        "source_dir",
        type=Path,
        help="root of the source dataset download; for `manifest`, the .csv / .jsonl / .parquet file",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (Hub-ready)")
    p.add_argument(
        "--model",
        default=None,
        help="part parser: schp-pascal (default; SCHP on Pascal-Person-Part, the paper's), schp-lip, "
        "schp-atr, segformer-atr; or an SCHP checkpoint (.pth/.safetensors file, folder or Hub repo), "
        "or a transformers segmentation checkpoint (folder or Hub id)",
    )
    p.add_argument(
        "--parsing-dir",
        type=Path,
        default=None,
        help="read precomputed part maps DIR/<source path>.png (values 0..6) instead of running a model",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--batch-size", type=int, default=8, help="images per model forward pass (default 8)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="decoding/encoding threads per shard maker (default: 2 with the model on CPU, one per core "
        "but one on CUDA, shared out among the worker processes)",
    )
    dist = p.add_argument_group("distribution (the files are the same for every distributor and number of workers)")
    dist.add_argument(
        "--distributor",
        choices=["local", "processes", "ray"],
        default=None,
        help="local: this process; processes: worker processes on this machine, each with its own "
        "pipeline and copy of the model; ray: tasks on a Ray cluster (pip install "
        "'occluded-ccreid[ray]'). Default: local, or processes with --processes N > 1 or --devices",
    )
    dist.add_argument(
        "--processes",
        type=int,
        default=None,
        help="processes: worker processes (per device with --devices; default 1); ray: tasks at once "
        "(default: the cluster's GPUs, or CPUs)",
    )
    dist.add_argument(
        "--devices",
        default=None,
        help="processes: one worker per device, e.g. cuda:0,cuda:1, or all (every CUDA device)",
    )
    dist.add_argument(
        "--ray-address",
        default=None,
        help="ray: the cluster to join (auto, ray://HOST:10001, HOST:6379); default: a local cluster",
    )
    p.add_argument(
        "--shard-size",
        type=int,
        default=None,
        help="source images per Parquet shard (default: shards of at most ~500 MB, a multiple of 32 "
        "of them for a split of 3200 images or more)",
    )
    p.add_argument(
        "--parse-size",
        type=_size,
        default=DEFAULT_PARSE_SIZE,
        help=f"model input box HxW (default {DEFAULT_PARSE_SIZE[0]}x{DEFAULT_PARSE_SIZE[1]})",
    )
    p.add_argument(
        "--keep-aspect",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="fit each crop into --parse-size with its own aspect ratio, sides multiples of 32, "
        "batched by input size (default); --no-keep-aspect stretches every crop to --parse-size",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16"],
        default="fp32",
        help="autocast the model: bf16 on CUDA or a CPU with native bf16 (~1.7x on AVX512-BF16), "
        "fp16 on CUDA (default fp32; part maps may differ at part borders)",
    )
    occ = p.add_argument_group("occlusion (default: the paper's method)")
    occ.add_argument(
        "--occluder",
        default="parts",
        metavar="{" + ",".join(OCCLUDERS) + "}[,...]",
        help="parts: grown body-part occluder (the paper); rectangle: Feng et al.'s black bands; "
        "person: another identity of the same split, pasted; objects: RGBA cut-outs from "
        "--objects-dir; several comma-separated: each occluder draws its kind among them",
    )
    occ.add_argument(
        "--occluders",
        default="1",
        metavar="K|K1-K2",
        help="occluders per occluded image, or a range drawn per image (default 1); the coverage band "
        "applies to their union",
    )
    occ.add_argument(
        "--objects-dir",
        type=Path,
        default=None,
        help="folder of RGBA cut-outs (e.g. Pascal VOC objects) for --occluder objects",
    )
    occ.add_argument(
        "--fill",
        choices=list(FILLS),
        default=None,
        help="how parts / rectangle occluders are fused (default: add for parts, black for rectangle); "
        "person and objects are pasted with their own pixels",
    )
    occ.add_argument(
        "--min-coverage",
        type=float,
        default=DEFAULT_MIN_COVERAGE,
        help=f"least (alpha-weighted) share of the person the occluder must cover (default {DEFAULT_MIN_COVERAGE})",
    )
    occ.add_argument(
        "--max-coverage",
        type=float,
        default=1.0,
        help="largest share of the person the occluder may cover (default 1.0)",
    )
    occ.add_argument(
        "--rectangle-fraction",
        type=float,
        default=DEFAULT_RECTANGLE_FRACTION,
        help=f"band size of --occluder rectangle (default {DEFAULT_RECTANGLE_FRACTION})",
    )
    occ.add_argument(
        "--occlude-splits", default=None, help="comma-separated splits to occlude (default: all, as the paper)"
    )
    occ.add_argument("--occlusion-prob", type=float, default=1.0, help="share of rows occluded (default 1.0)")
    occ.add_argument(
        "--occlusion-preset",
        choices=list(PRESETS),
        default=None,
        help="which rows are occluded, as a benchmark does: occluded-duke = every query, 10%% of the "
        "gallery, none of the other splits (instead of --occlude-splits / --occlusion-prob)",
    )
    occ.add_argument("--keep-clean", action="store_true", help="add the original image as column clean_image")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_build(args: argparse.Namespace) -> int:
    from builder.devices import prepare_this_process

    prepare_this_process(args.device, network=args.parsing_dir is None)  # before `datasets` starts threads
    from builder.pipeline import BuildConfig, build
    from occluded_ccreid.occlusion import OcclusionConfig, parse_count

    if args.no_progress:  # no bars at all: also not transformers' "Loading weights" one
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
    try:
        count = parse_count(args.occluders)
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    occlusion = OcclusionConfig(
        occluder=args.occluder,
        fill=args.fill,
        min_coverage=args.min_coverage,
        max_coverage=args.max_coverage,
        occlusion_prob=args.occlusion_prob,
        rectangle_fraction=args.rectangle_fraction,
        occluders=count,
        objects_dir=str(args.objects_dir) if args.objects_dir is not None else None,
        preset=args.occlusion_preset,
    )
    splits = tuple(s.strip() for s in args.occlude_splits.split(",") if s.strip()) if args.occlude_splits else None
    try:
        report = build(
            BuildConfig(
                dataset=args.dataset,
                source_dir=args.source_dir,
                out_dir=args.out,
                model=args.model,
                parsing_dir=args.parsing_dir,
                seed=args.seed,
                device=args.device,
                batch_size=args.batch_size,
                workers=args.workers,
                distributor=args.distributor,
                processes=args.processes,
                devices=args.devices,
                ray_address=args.ray_address,
                shard_size=args.shard_size,
                parse_size=args.parse_size,
                keep_aspect=args.keep_aspect,
                precision=args.precision,
                occlusion=occlusion,
                occlude_splits=splits,
                keep_clean=args.keep_clean,
                overwrite=args.overwrite,
                progress=not args.no_progress,
            )
        )
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        raise BuildError(disk_full_message(exc, args.out)) from None
    counts = ", ".join(f"{name} {stats.num_rows}" for name, stats in report.splits.items())
    print(
        f"built {args.out}: {report.num_rows} images ({counts}); "
        f"{len(report.skipped)} skipped, {len(report.ignored_files)} non-image files ignored"
    )
    out_of_band = sum(stats.out_of_band for stats in report.splits.values())
    if out_of_band:
        print(f"  {out_of_band} occluded image(s) stayed outside the coverage band (kept with their closest draw)")
    for skip in report.skipped:
        print(f"  skipped {skip['source_path']}: {skip['reason']}")
    return 0


def _add_push(commands) -> None:
    p = commands.add_parser("push", help="publish a build folder as a dataset repo on the Hugging Face Hub")
    p.add_argument("out_dir", type=Path, help="a build folder made by `builder build`")
    p.add_argument("--repo-id", required=True, help="NAMESPACE/NAME of the dataset repo (created if missing)")
    p.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    p.add_argument("--revision", default=None, help="existing branch to push to (default: main)")
    p.add_argument("--token", default=None, help="token with write access (default: HF_TOKEN, then the saved login)")
    p.add_argument("--message", default=None, help="commit message")
    p.add_argument(
        "--config",
        default=None,
        help="publish the build as this config of the repo (files under CONFIG/, card entries merged; "
        "other configs untouched); default: the repo holds this build only",
    )
    p.add_argument(
        "--default",
        action="store_true",
        help="with --config: make it the config load_dataset(REPO) opens without a config name",
    )
    p.add_argument(
        "--gated",
        action="store_true",
        help="gate the repo: users accept the source dataset's terms of use before downloading (recommended)",
    )


def _run_push(args: argparse.Namespace) -> int:
    from builder.publish import push

    result = push(
        args.out_dir,
        args.repo_id,
        config=args.config,
        default=args.default,
        gated=args.gated,
        private=args.private,
        revision=args.revision,
        token=args.token,
        message=args.message,
    )
    print(result.summary())
    return 0


def _add_verify(commands) -> None:
    p = commands.add_parser("verify", help="check a build folder, a downloaded repo or a published repo")
    p.add_argument("target", help="a folder (build or repo checkout), or NAMESPACE/NAME of a dataset repo on the Hub")
    p.add_argument("--config", default=None, help="check only this config (default: every build found)")
    p.add_argument("--revision", default=None, help="branch, tag or commit of a Hub repo (default: main)")
    p.add_argument("--token", default=None, help="token for a private or gated repo (default: HF_TOKEN, saved login)")


def _run_verify(args: argparse.Namespace) -> int:
    from builder.verify import verify

    for summary in verify(args.target, args.config, revision=args.revision, token=args.token):
        name = f"config {summary.config}" if summary.config else "build"
        splits = ", ".join(f"{split} {rows}" for split, rows in summary.splits.items())
        shards = len(summary.report.shards)
        print(
            f"ok: {args.target} {name} ({summary.dataset}): {summary.num_rows} rows ({splits}), "
            f"{shards} shards readable, row counts and sha256 as recorded, card consistent"
        )
    return 0


def _add_preview(commands) -> None:
    p = commands.add_parser("preview", help="write a contact sheet of a build (image, occluder, part map)")
    p.add_argument("folder", type=Path, help="a build folder")
    p.add_argument("--out", type=Path, default=None, help="picture to write (default FOLDER/preview.png)")
    p.add_argument("--n", type=int, default=24, help="number of rows shown (default 24)")


def _run_preview(args: argparse.Namespace) -> int:
    from builder.preview import make_preview

    try:
        print(make_preview(args.folder, args.out, args.n))
    except (FileNotFoundError, ValueError) as exc:
        raise BuildError(str(exc)) from None
    return 0


def _interrupt(signum: int, frame) -> None:
    raise KeyboardInterrupt(signum)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="builder", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_build(commands)
    _add_push(commands)
    _add_verify(commands)
    _add_preview(commands)
    args = parser.parse_args(argv)
    # A build stopped by SIGTERM (kill, a job scheduler, a container stop) ends as after Ctrl-C:
    # the build's own cleanup runs, then one line and status 128 + signal number.
    on_term = args.command == "build" and threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if on_term else None
    try:
        runs = {"build": _run_build, "push": _run_push, "verify": _run_verify, "preview": _run_preview}
        return runs[args.command](args)
    except (BuildError, PushError, BuildFolderError) as exc:  # BuildFolderError: from verify
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        resume = " Run the same command again to resume: finished shards are kept." if args.command == "build" else ""
        print(
            f"interrupted by {signal.Signals(signum).name}; the output folder was not changed.{resume}", file=sys.stderr
        )
        return 128 + signum
    finally:
        if on_term:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
