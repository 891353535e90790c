"""Planned shards -> finished shard files and their journal entries: the one piece of work every
distributor (builder/distribute.py) hands out.

A `ShardMaker` is built once from the build plan (builder.pipeline) and pickled to wherever shards
are made: this process, a worker process, a Ray task on another machine. It holds what any shard
needs (options, the scan's records, the splits to occlude, the column types) and nothing that
depends on where it runs; `on(policy)` gives the maker of one worker, whose device, threads, lanes
and allocator policy come from builder.devices. Its part parser (and model) is loaded on first use
in each process and kept for the shards that follow.

A shard's rows depend only on its own records, the seed and the options (builder/processing.py),
so shards can be made anywhere, in any order and by any number of workers, and the files stay
byte-identical.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from builder.config import BuildConfig, make_parser
from builder.devices import DevicePolicy, device_policy
from builder.shards import RecordRange, Shard

if TYPE_CHECKING:
    from datasets import Features

    from builder.parsing import PartParser
    from builder.processing import Stage
    from occluded_ccreid.sources import SourceRecord


@dataclass
class ShardMaker:
    """Makes runs of planned shards (see the module docstring). Picklable: its loaded parser and
    pipeline stage stay behind."""

    config: BuildConfig
    root: Path  # the folder the records' paths are relative to
    records: Sequence[SourceRecord]  # all records of the scan (an Arrow-backed RecordTable)
    occlude_splits: frozenset[str]
    features: Features
    policy: DevicePolicy
    parser: PartParser | None = field(default=None, repr=False)  # loaded on first use, never pickled
    _stage: Stage | None = field(default=None, init=False, repr=False)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "parser": None, "_stage": None}

    @property
    def network(self) -> bool:
        """Whether a model makes the part maps (not `--parsing-dir`)."""
        return self.config.parsing_dir is None

    def on(self, policy: DevicePolicy) -> ShardMaker:
        """This maker for one worker with its own device policy (no parser loaded yet)."""
        return replace(self, policy=policy, parser=None)

    def policy_for(self, device: str, sharing: int) -> DevicePolicy:
        """The policy of one of `sharing` makers on this machine's cores, on `device`."""
        return device_policy(device, self.network, self.config.workers, sharing)

    def stage(self) -> Stage:
        """The pipeline stage (parser, occlusion options) of this process, made on first use."""
        if self._stage is None:
            from builder.processing import OCCLUSION_DEVICE, Stage

            parser = self.parser if self.parser is not None else make_parser(self.config, self.policy.device)
            if self.network:
                parser.num_threads = self.policy.model_threads or parser.num_threads  # type: ignore[attr-defined]
                parser.lanes = self.policy.lanes  # type: ignore[attr-defined]
            self.parser = parser
            self._stage = Stage(
                self.root,
                parser,
                self.config.seed,
                self.config.occlusion,
                self.occlude_splits,
                self.config.keep_clean,
                self.records,
                OCCLUSION_DEVICE,
            )
        return self._stage

    def make(
        self, run: Sequence[Shard], path: Callable[[Shard], Path], on_record: Callable[[], None] = lambda: None
    ) -> Iterator[tuple[Shard, dict]]:
        """Make the shards of `run` (contiguous record ranges, in order) in one pass of the pipeline,
        each written to `path(shard)`; yield (shard, journal entry) as each file is complete. On any
        error the unfinished file is removed (see builder.writer.write_shard)."""
        from builder.processing import process
        from builder.writer import write_shard

        for before, after in itertools.pairwise(run):
            if before.stop != after.start:
                raise ValueError(f"{before.name} and {after.name} are not contiguous: make them in separate runs")
        if not run:
            return
        stage = self.stage()
        results = process(
            RecordRange(self.records, run[0].start, run[-1].stop), stage, self.config.batch_size, self.policy.workers
        )
        for shard in run:
            yield shard, write_shard(shard, results, path(shard), self.features, on_record)
