"""`builder build`: source tree -> part maps -> occlusion -> rows -> Parquet shards -> build folder.

Scan, checks, plan, distribute, card: the source is scanned and every check that needs no image
runs first (builder.preflight, builder.distribute.choose_distributor); the shard plan is fixed
(builder.shards) and the staging folder opened (builder.staging), where a re-run of an interrupted
build finds the finished shards; a distributor (builder.distribute) hands the shards still to do to
a shard maker (builder.shardmaker) wherever it runs and this process commits each finished file;
then the report, preview and card are written and the folder is renamed into place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from builder.card import render_card
from builder.config import BuildConfig, make_parser
from builder.devices import device_policy, resolve_device
from builder.distribute import DISTRIBUTORS, PendingShards, choose_distributor
from builder.errors import BuildError, BuildStopped
from builder.preflight import preflight
from builder.preview import make_preview
from builder.report import BuildReport, SplitStats, source_name
from builder.shardmaker import ShardMaker
from builder.shards import ShardPlan, estimate_row_bytes, plan_shards
from builder.staging import (
    Staging,
    check_free_space,
    fingerprint,
    parser_inputs,
    recover,
    staged_bytes,
)
from occluded_ccreid.features import dataset_features
from occluded_ccreid.layout import CARD_NAME
from occluded_ccreid.sources import LayoutError, get_source

if TYPE_CHECKING:
    from datasets import Features

    from builder.parsing import PartParser
    from occluded_ccreid.sources.base import ScanResult as Scan
    from occluded_ccreid.sources.base import SourceLayout


def build(config: BuildConfig) -> BuildReport:
    """Build the dataset folder `config.out_dir`; raises BuildError on anything the user must fix."""
    layout, scan, root = _scan(config)
    recover(Path(config.out_dir))  # e.g. put back OUT when an earlier --overwrite was killed mid-swap
    occlude_splits = preflight(config, layout, scan.splits, root)  # before any image or model
    distributor = choose_distributor(config)
    parser = make_parser(config)
    parser.check_present([r.source_path for r in scan.records])
    report, plan, features, staging = _plan(config, layout, scan, root, parser, occlude_splits)
    staging.open()
    progress = _NoProgress()  # closed in `finally`
    try:
        todo = [shard for shard in plan.shards if shard.name not in staging.done]
        progress = _progress(
            len(scan.records),
            config.progress,
            f"Occluded-{layout.pretty_name}",
            initial=len(scan.records) - sum(s.num_records for s in todo),
        )
        maker = ShardMaker(
            config,
            root,
            scan.records,
            occlude_splits,
            features,
            device_policy(str(resolve_device(config.device)), config.parsing_dir is None, config.workers),
            parser=parser,
        )
        DISTRIBUTORS[distributor](
            maker,
            PendingShards(
                todo,
                lambda shard: staging.shard_tmp(shard.name),
                lambda shard, entry: staging.commit(shard.name, entry),
                progress.update,
            ),
        )
        progress.close()
        _finish(report, plan, layout, features, staging)
    except BuildStopped:
        raise  # not the inputs' fault: the finished shards stay for a re-run (closed below)
    except BuildError:
        staging.discard()  # bad input: the user must change it, and nothing misleading stays behind
        raise
    finally:
        progress.close()  # now, not when garbage-collected: the CLI's interrupt or error line comes last
        staging.close()  # anything else (a kill, Ctrl-C, a full disk): the finished shards stay for a re-run
    return report


def _scan(config: BuildConfig) -> tuple[SourceLayout, Scan, Path]:
    """The source's layout, its records, and the folder their paths are relative to (a manifest's
    own folder, not SOURCE); files are listed, no image is read."""
    try:
        layout = get_source(config.dataset)
        scan = layout.scan(config.source_dir)
    except (KeyError, LayoutError) as exc:
        raise BuildError(str(exc).strip("'\"")) from None
    return layout, scan, Path(scan.root if scan.root is not None else config.source_dir)


def _plan(
    config: BuildConfig,
    layout: SourceLayout,
    scan: Scan,
    root: Path,
    parser: PartParser,
    occlude_splits: frozenset[str],
) -> tuple[BuildReport, ShardPlan, Features, Staging]:
    """The report's settings, the shard plan, the columns, and the staging folder whose fingerprint
    they make (not opened yet), after checking that the disk can hold what is still to write."""
    features = dataset_features(keep_clean=config.keep_clean, extra_columns=scan.extra_columns)
    report = BuildReport(
        dataset=layout.name,
        source_dir=source_name(config.source_dir),  # not the local path: the report is published
        seed=config.seed,
        parser=parser.describe(),
        occlusion={
            **config.occlusion.describe(),
            "occlude_splits": sorted(occlude_splits),
            "keep_clean": config.keep_clean,
        },
        splits={split: SplitStats() for split in scan.splits},
        ignored_files=scan.ignored_files,
    )
    sizes = estimate_row_bytes(root, scan.records, config.keep_clean)
    plan = plan_shards(scan.records, scan.splits, sizes.bounds, config.shard_size)
    report.shard_plan = plan.describe()
    out_dir = Path(config.out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = staged_bytes(out_dir)
    check_free_space(out_dir.parent, sizes.expected - staged, plan.estimated_bytes - staged)
    paths = [r.source_path for r in scan.records]
    staging = Staging(out_dir, fingerprint(report.to_json(), root, paths, parser_inputs(parser, report.parser, paths)))
    return report, plan, features, staging


def _finish(report: BuildReport, plan: ShardPlan, layout: SourceLayout, features: Features, staging: Staging) -> None:
    """Every shard is committed: the report, preview and card, then the build becomes OUT."""
    for shard in plan.shards:  # every build sums its statistics the same way, resumed or not
        report.add_shard(shard.name, staging.done[shard.name])
    _refuse_empty_splits(report)
    report.write(staging.build)
    preview = make_preview(staging.build).name if report.num_rows else None
    card = render_card(report, layout, features, staging.build, preview=preview)
    (staging.build / CARD_NAME).write_text(card, encoding="utf-8")
    staging.move_into_place()


def _refuse_empty_splits(report: BuildReport) -> None:
    """A split whose every image was skipped has no rows, and `datasets` cannot load a split
    without rows (the scan already refuses splits without images)."""
    for split, stats in report.splits.items():
        if stats.num_rows == 0:
            skips = [s for s in report.skipped if s["split"] == split]
            example = f", e.g. {skips[0]['source_path']}: {skips[0]['reason']}" if skips else ""
            raise BuildError(
                f"every image of split {split} was skipped ({len(skips)} image(s){example}); a split "
                "without rows cannot be loaded with load_dataset: fix or replace those images"
            )


class _NoProgress:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, enabled: bool, description: str, initial: int = 0):
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", initial=initial)
