"""What a build is asked to do (`BuildConfig`, the `builder build` options), and the part parser
it asks for: shared by the build (builder.pipeline) and its worker processes (builder.distribute)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.occlusion import OcclusionConfig
from builder.parsing import PartParser

# The model input box (H, W) each crop is fitted into: the default of `--parse-size`, in this one place.
DEFAULT_PARSE_SIZE: tuple[int, int] = (512, 256)


@dataclass
class BuildConfig:
    dataset: str
    source_dir: Path
    out_dir: Path
    model: str | None = None  # None: the default checkpoint (unless parsing_dir is given)
    parsing_dir: Path | None = None
    seed: int = 0
    device: str = "auto"
    batch_size: int = 8
    workers: int | None = None  # None: default_workers() for the parser's device (per process)
    processes: int = 1  # worker processes making whole shards (builder.distribute); 1: this process
    shard_size: int | None = None  # records per shard; None: sized by bytes (builder.shards)
    parse_size: tuple[int, int] = DEFAULT_PARSE_SIZE
    keep_aspect: bool = True  # fit each image into parse_size with its own aspect ratio (False: stretch)
    precision: str = "fp32"  # "bf16" (CUDA, CPU) / "fp16" (CUDA): autocast, opt in
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    occlude_splits: tuple[str, ...] | None = None  # None: every split, as the paper
    keep_clean: bool = False  # add the original image as `clean_image`
    overwrite: bool = False
    progress: bool = True


def make_parser(config: BuildConfig) -> PartParser:
    if config.parsing_dir is not None:
        from builder.parsing.precomputed import PrecomputedParser

        return PrecomputedParser(config.parsing_dir)
    from builder.parsing.models import make_model_parser

    parser = make_model_parser(config.model, config.device, config.parse_size,
                               keep_aspect=config.keep_aspect, precision=config.precision)
    if parser.device.type == "cpu":
        parser.num_threads = 1  # model_streams() runs two single-threaded forward passes at once
    return parser
