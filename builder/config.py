"""What a build is asked to do (`BuildConfig`, the `builder build` options), and the part parser
it asks for: shared by the build (builder.pipeline) and its shard makers (builder.shardmaker)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from builder.parsing import PartParser
from occluded_ccreid.occlusion import OcclusionConfig

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
    workers: int | None = None  # threads per shard maker; None: builder.devices.device_policy's
    distributor: str | None = None  # a key of builder.distribute.DISTRIBUTORS; None: local, or processes
    devices: str | None = None  # --devices: cuda:0,cuda:1,... or all (one worker process per device)
    processes: int | None = None  # worker processes (per device); with ray, tasks at once; None: the default
    ray_address: str | None = None  # an existing Ray cluster; None: a local one
    shard_size: int | None = None  # records per shard; None: sized by bytes (builder.shards)
    parse_size: tuple[int, int] = DEFAULT_PARSE_SIZE
    keep_aspect: bool = True  # fit each image into parse_size with its own aspect ratio (False: stretch)
    precision: str = "fp32"  # "bf16" (CUDA, CPU) / "fp16" (CUDA): autocast, opt in
    occlusion: OcclusionConfig = field(default_factory=OcclusionConfig)
    occlude_splits: tuple[str, ...] | None = None  # None: every split, as the paper
    keep_clean: bool = False  # add the original image as `clean_image`
    overwrite: bool = False
    progress: bool = True


def make_parser(config: BuildConfig, device: str | None = None) -> PartParser:
    """The part parser of `config`, its model on `device` (default: `config.device`)."""
    if config.parsing_dir is not None:
        from builder.parsing.precomputed import PrecomputedParser

        return PrecomputedParser(config.parsing_dir)
    from builder.parsing.models import make_model_parser

    return make_model_parser(
        config.model,
        device or config.device,
        config.parse_size,
        keep_aspect=config.keep_aspect,
        precision=config.precision,
    )
