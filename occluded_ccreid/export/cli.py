"""The export command line.

python -m occluded_ccreid.export BUILD_OR_REPO OUT [--config NAME] [--splits a,b] [--clean] [--masks]
    [--workers N] [--no-progress]
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence

from .folder import CLEAN_DIR, to_folder
from .images import JPEG_OPTIONS, ExportError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m occluded_ccreid.export",
        description=(
            "Write a built dataset back into its source's folder layout and file names (PRCC's "
            "rgb/train/<pid>/A_x.jpg, LTCC's train/<pid>_<c>_c<cam>_<frame>.png, ...), so the usual "
            "dataset classes (CAL / Simple-CCReID's) read it unchanged. JPEG names get JPEG at quality "
            f"{JPEG_OPTIONS['quality']} with 4:4:4 chroma (mean error <= 1 grey level), PNG names the "
            "stored PNG bytes. Written to .OUT.export-partial beside OUT and renamed into place when "
            "complete; the same command resumes an interrupted export."
        ),
    )
    parser.add_argument("build", metavar="BUILD_OR_REPO", help="a build folder or a Hub dataset repo id")
    parser.add_argument("out", metavar="OUT", help="the folder to create (must not exist, or be empty)")
    parser.add_argument("--config", help="the config of a Hub repo that holds several builds")
    parser.add_argument("--splits", help="comma-separated splits to export (default: all)")
    parser.add_argument(
        "--clean",
        action="store_true",
        help=f"also write a --keep-clean build's clean images as a second tree, OUT/{CLEAN_DIR}/",
    )
    parser.add_argument(
        "--masks",
        action="store_true",
        help="also write occlusion_mask and parsing as PNGs: OUT/occlusion_mask/<source path>.png, "
        "OUT/parsing/<source path>.png",
    )
    parser.add_argument("--workers", type=int, default=None, help="encoding threads (default: the cores, at most 8)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the export as Ctrl-C does: it resumes the same way


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()] if args.splits else None
    signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.workers is not None and args.workers < 1:
            raise ExportError(f"--workers must be >= 1, got {args.workers}")
        result = to_folder(
            args.build,
            args.out,
            config=args.config,
            splits=splits,
            clean=args.clean,
            masks=args.masks,
            progress=not args.no_progress,
            workers=args.workers,
        )
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder that cannot be written: one line, resumable
        print(
            f"error: {exc.strerror or exc} ({exc.filename or args.out}); run the same command again to resume "
            "once fixed",
            file=sys.stderr,
        )
        return 2
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if not result.already_complete:
        rows = ", ".join(f"{split} {n}" for split, n in result.rows.items())
        print(f"wrote {result.out}: {result.files} files ({rows} rows)")
    return 0


__all__ = ["build_parser", "main"]
