"""`builder build`: source tree -> part maps -> occlusion -> rows -> Parquet shards -> build folder.

The source is scanned and every check that needs no image runs first (builder.preflight); the
shard plan is fixed (builder.shards); the records of the shards still to do go through
`builder.processing.process`, and their rows are written shard by shard (builder.writer).
The build is written shard by shard to a hidden folder beside OUT_DIR (builder.staging), where a
re-run of an interrupted build finds the finished shards, and renamed into place when complete.
"""

from __future__ import annotations

from pathlib import Path

from builder.card import render_card
from builder.config import BuildConfig, make_parser
from builder.distribute import ShardJob, make_shards_in_processes
from builder.errors import BuildError, BuildStopped
from builder.preflight import preflight
from builder.preview import make_preview
from builder.processing import OCCLUSION_DEVICE, Stage, default_workers, process
from builder.report import BuildReport, SplitStats
from builder.shards import RecordRange, contiguous_runs, estimate_row_bytes, plan_shards
from builder.staging import Staging, check_free_space, fingerprint, parser_inputs, recover, staged_bytes
from builder.writer import write_shards
from occluded_ccreid.features import dataset_features
from occluded_ccreid.sources import LayoutError, get_source


def build(config: BuildConfig) -> BuildReport:
    """Build the dataset folder `config.out_dir`; raises BuildError on anything the user must fix."""
    try:
        layout = get_source(config.dataset)
        scan = layout.scan(config.source_dir)  # lists files; no image is read yet
    except (KeyError, LayoutError) as exc:
        raise BuildError(str(exc).strip("'\"")) from None
    out_dir = Path(config.out_dir)
    recover(out_dir)  # e.g. put back OUT when an earlier --overwrite was killed mid-swap
    # options, device, --out: before any image or model
    occlude_splits = preflight(config, layout, scan.splits, scan.root)
    parser = make_parser(config)
    parser.check_present([r.source_path for r in scan.records])

    features = dataset_features(keep_clean=config.keep_clean, extra_columns=scan.extra_columns)
    report = BuildReport(
        dataset=layout.name,
        source_dir=str(Path(config.source_dir).resolve()),
        seed=config.seed,
        parser=parser.describe(),
        occlusion={**config.occlusion.describe(), "occlude_splits": sorted(occlude_splits),
                   "keep_clean": config.keep_clean},
        splits={split: SplitStats() for split in scan.splits},
        ignored_files=scan.ignored_files,
    )
    root = scan.root  # a manifest's paths are relative to its own folder, not to SOURCE
    sizes = estimate_row_bytes(root, scan.records, config.keep_clean)
    plan = plan_shards(scan.records, scan.splits, sizes.bounds, config.shard_size)
    report.shard_plan = plan.describe()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = staged_bytes(out_dir)
    check_free_space(out_dir.parent, sizes.expected - staged, plan.estimated_bytes - staged)
    staging = Staging(out_dir, fingerprint(report.to_json(), root, (r.source_path for r in scan.records),
                                           parser_inputs(parser, report.parser, (r.source_path for r in scan.records))))
    staging.open()
    progress = _NoProgress()  # closed in `finally`
    try:
        todo = [shard for shard in plan.shards if shard.name not in staging.done]
        progress = _progress(len(scan.records), config.progress, f"Occluded-{layout.pretty_name}",
                             initial=len(scan.records) - sum(s.num_records for s in todo))
        if config.processes > 1 and len(todo) > 1:
            job = ShardJob(config, root, scan.records, frozenset(occlude_splits), features)
            make_shards_in_processes(todo, job, staging, lambda shard: progress.update(shard.num_records))
        else:
            stage = Stage(root, parser, config.seed, config.occlusion, occlude_splits,
                          config.keep_clean, scan.records, OCCLUSION_DEVICE)
            workers = default_workers(parser) if config.workers is None else config.workers
            for run in contiguous_runs(todo):  # one run, unless a resumed build lost a shard in the middle
                records = RecordRange(scan.records, run[0].start, run[-1].stop)
                write_shards(run, process(records, stage, config.batch_size, workers), staging, features,
                             lambda: progress.update(1))
        progress.close()
        for shard in plan.shards:  # every build sums its statistics the same way, resumed or not
            report.add_shard(shard.name, staging.done[shard.name])
        report.write(staging.build)
        preview = make_preview(staging.build).name if report.num_rows else None
        card = render_card(report.to_json(), layout, features, staging.build, preview=preview)
        (staging.build / "README.md").write_text(card, encoding="utf-8")
        staging.move_into_place()
    except BuildStopped:
        raise  # not the inputs' fault: the finished shards stay for a re-run (closed below)
    except BuildError:
        staging.discard()  # bad input: the user must change it, and nothing misleading stays behind
        raise
    finally:
        progress.close()  # now, not when garbage-collected: the CLI's interrupt or error line comes last
        staging.close()  # anything else (a kill, Ctrl-C, a full disk): the finished shards stay for a re-run
    return report


class _NoProgress:
    def update(self, n: int) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, enabled: bool, description: str, initial: int = 0):
    if not enabled:
        return _NoProgress()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="img", initial=initial)
