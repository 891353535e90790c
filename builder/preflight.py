"""Checks a build runs before it reads any image or loads a model: the options, the device, and
where the build goes (`--out`). Each failure is a BuildError that says what, where and how to fix.

`--out` is guarded because a build replaces it wholesale: the finished build is renamed into place
and, with `--overwrite`, the folder that was there is deleted. So `--out` must be a new folder, an
empty one, or a previous build of this tool holding nothing else (recognised by its
`build_report.json`); it may not be, contain or lie inside the source folder, `--parsing-dir` or a
local `--model` folder (symlinks resolved); and it may not be the current directory (or a folder
above it), a mount point or a symbolic link, which a rename cannot replace.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from builder.errors import BuildError
from occluded_ccreid.layout import CARD_NAME, DATA_DIR, PREVIEW_NAME, REPORT_NAME

if TYPE_CHECKING:
    from builder.config import BuildConfig
    from occluded_ccreid.sources import SourceLayout

# What a build writes beside its shards (the report lists the shards). A new file in a build
# folder must be added here, or `--overwrite` refuses to replace builds that hold it.
BUILD_FILES = frozenset({REPORT_NAME, CARD_NAME, PREVIEW_NAME})
REPORT_KEYS = frozenset({"dataset", "source_dir", "seed", "parser", "occlusion", "splits", "shards", "versions"})
LISTED = 5  # names shown in a refusal
WALK_LIMIT = 10_000  # entries looked at before a refusal says "more than"


def preflight(config: BuildConfig, layout: SourceLayout, splits: Sequence[str], source_root: Path) -> frozenset[str]:
    """Check everything about a build that needs no image; return the splits to occlude (of the
    scan's `splits`). `source_root` is the folder the images are read from: SOURCE, or for a
    manifest the manifest's folder."""
    occlude_splits = check_options(config, layout, splits)
    from builder.devices import resolve_device

    resolve_device(config.device)  # a wrong --device is an error even when --parsing-dir makes it unused
    model = Path(config.model) if config.model and Path(config.model).exists() else None
    check_out(
        Path(config.out_dir),
        config.overwrite,
        {
            "source folder": Path(source_root),
            "source": Path(config.source_dir),
            "--parsing-dir": config.parsing_dir,
            "--model folder": model,
        },
    )
    return occlude_splits


def check_options(config: BuildConfig, layout: SourceLayout, splits: Sequence[str]) -> frozenset[str]:
    if config.batch_size < 1:
        raise BuildError(f"--batch-size must be >= 1 (got {config.batch_size})")
    if config.shard_size is not None and config.shard_size < 1:  # None: shards sized by bytes
        raise BuildError(f"--shard-size must be >= 1 (got {config.shard_size})")
    if config.workers is not None and config.workers < 0:
        raise BuildError(f"--workers must be >= 0 (got {config.workers})")
    try:
        config.occlusion.validate()
    except ValueError as exc:
        raise BuildError(str(exc)) from None
    if config.occlusion.preset is not None:
        if config.occlude_splits:
            raise BuildError(
                f"--occlusion-preset {config.occlusion.preset} says which splits are occluded: drop --occlude-splits"
            )
        from occluded_ccreid.occlusion import PRESETS

        if missing := [s for s in PRESETS[config.occlusion.preset] if s not in splits]:
            raise BuildError(
                f"--occlusion-preset {config.occlusion.preset} needs the split(s) {', '.join(missing)}, "
                f"which {layout.pretty_name} does not have ({', '.join(splits)})"
            )
        return frozenset(s for s in splits if config.occlusion.split_probability(s, ()) > 0)
    occlude_splits = frozenset(config.occlude_splits or splits)
    if unknown := occlude_splits - set(splits):
        raise BuildError(
            f"--occlude-splits {', '.join(sorted(unknown))} not in {layout.pretty_name}'s splits ({', '.join(splits)})"
        )
    return occlude_splits


def check_out(out: Path, overwrite: bool, protected: dict[str, Path | None]) -> None:
    """Refuse an `--out` that the build could not put in place, or whose replacement would lose data."""
    real = out.resolve()
    for what, folder in protected.items():
        if folder is None:
            continue
        folder = folder.resolve()
        if real == folder:
            raise BuildError(
                f"--out {out} is the {what} itself; choose a new folder outside it, "
                f"e.g. --out {folder.parent / ('occluded-' + folder.name)}"
            )
        if folder in real.parents:
            raise BuildError(f"--out {out} lies inside the {what} {folder}; choose a folder outside it")
        if real in folder.parents:
            raise BuildError(f"--out {out} contains the {what} {folder}; choose a folder that is not above it")
    if out.is_symlink():
        raise BuildError(
            f"--out {out} is a symbolic link (to {real}); a build is renamed into place, which "
            f"would replace the link, not its target: give the folder itself or a new name"
        )
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        here = "the current directory" if real == cwd else f"above the current directory {cwd}"
        raise BuildError(
            f"--out {out} is {here}; a build is renamed into place, which cannot replace the folder "
            f"you are in: name a new folder, e.g. --out {out / 'occluded-build'}"
        )
    if os.path.ismount(real):
        raise BuildError(
            f"--out {out} is a mount point; a build is renamed into place, which cannot replace a "
            f"mount point: name a folder inside it, e.g. --out {out / 'occluded-build'}"
        )
    if real.exists():
        _check_replaceable(out, real, overwrite)
    _check_parent_writable(out, real)


def _check_replaceable(out: Path, real: Path, overwrite: bool) -> None:
    if not real.is_dir():
        raise BuildError(f"--out {out} is a file, not a folder; choose another --out")
    report = previous_build_report(real)
    foreign = _foreign_entries(real, report)
    if foreign:
        count = f"more than {WALK_LIMIT}" if len(foreign) > WALK_LIMIT else str(len(foreign))
        names = ", ".join(foreign[:LISTED]) + (", ..." if len(foreign) > LISTED else "")
        what = "is a previous build but also holds" if report is not None else "holds"
        raise BuildError(
            f"--out {out} {what} {count} file(s) or folder(s) that this tool did not write ({names}); "
            "--overwrite only replaces a previous build or an empty folder: choose another --out, "
            "or move those out of it"
        )
    if not overwrite:
        raise BuildError(f"output folder {out} already exists; pass --overwrite to replace it")


def previous_build_report(folder: Path) -> dict | None:
    """The build report of `folder` if it holds one this tool wrote (the report's keys), else None."""
    try:
        report = json.loads((folder / REPORT_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and report.keys() >= REPORT_KEYS else None


def _foreign_entries(folder: Path, report: dict | None) -> list[str]:
    """Paths under `folder` (relative, sorted walk order) that a build does not write: everything
    when there is no build report. Stops after WALK_LIMIT entries."""
    shards = report.get("shards") if report is not None else None
    allowed = set(BUILD_FILES | set(shards if isinstance(shards, dict) else ())) if report is not None else set()
    allowed_dirs = {DATA_DIR} if report is not None else set()
    foreign: list[str] = []

    def unreadable(error: OSError) -> None:  # a folder we cannot list may hold anything
        rel = Path(error.filename).relative_to(folder).as_posix()
        foreign.append(("its contents" if rel == "." else rel + "/") + " (unreadable)")

    for dirpath, dirnames, filenames in os.walk(folder, onerror=unreadable):
        dirnames.sort()
        base = Path(dirpath).relative_to(folder)
        links = [d for d in dirnames if (Path(dirpath) / d).is_symlink()]  # never followed
        for name in sorted(filenames + links):
            rel = (base / name).as_posix()
            if rel not in allowed:
                foreign.append(rel)
        kept = []
        for name in dirnames:
            rel = (base / name).as_posix()
            if name in links:
                continue
            if rel in allowed_dirs:
                kept.append(name)
            elif _is_empty(Path(dirpath) / name):
                foreign.append(rel + "/")  # an empty folder is still something the user made
            else:
                kept.append(name)  # walked: its files are listed one by one
        dirnames[:] = kept
        if len(foreign) > WALK_LIMIT:
            break
    return foreign


def _is_empty(folder: Path) -> bool:
    try:
        with os.scandir(folder) as entries:
            return next(entries, None) is None
    except OSError:
        return False  # walked next, where os.walk reports it as unreadable


def _check_parent_writable(out: Path, real: Path) -> None:
    parent = real.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BuildError(f"cannot create --out {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BuildError(f"cannot create --out {out}: no permission to write in {parent}")
