"""Occlusion as a training transform: any occluder kind drawn afresh each epoch on a row's clean
image and part map, instead of the one occlusion fixed at build time.

Each (row, epoch) draws from its own generator, seeded by (seed, the row's source_path, epoch):
epoch 0 uses the build's own streams, so with the build's seed and options (`from_report`) it
gives the built row's image and mask byte for byte; other epochs draw new shapes, parts, objects
and person donors. It needs the clean image, which builds store with `--keep-clean`
(`clean_image`); a row without it is refused, since an occluded image cannot be un-occluded.

Person donors: at epoch 0 the row's `person_donors` (what the build drew), looked up in the
split by source_path; at other epochs drawn among the split's rows of other identities. The
texture fill's donors are not recorded per row, so a build with `--fill texture` is refused.

    from occluded_ccreid.occlusion.transform import OcclusionTransform, PersonPool

    train = oc.load("out/occluded-prcc", split="train")
    occlude = OcclusionTransform.from_report("out/occluded-prcc", "train", people=PersonPool(train))
    occluded = occlude(train[i], epoch)          # .image (HxWx3 uint8), .mask, .ratio, .visibility
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .config import OcclusionConfig
from .core import Occlusion, occlude
from .draws import epoch_stream, image_rng
from .fills import Donor

DONOR_DRAWS = 20  # bounded search for a donor of another identity, as the build's


def to_array(value: Any, mode: str) -> np.ndarray:
    """An image column's value (a PIL image, or {"bytes": ...} when decoding is off) as an array;
    mode "L" of a part map keeps its values (palette PNGs hold the part ids as indices)."""
    if isinstance(value, Mapping):
        value = Image.open(io.BytesIO(value["bytes"]))
    if value.mode != mode and not (mode == "L" and value.mode == "P"):
        value = value.convert(mode)
    return np.asarray(value)


class PersonPool:
    """A split's rows as person donors (`clean_image`, `parsing`, `pid`, `source_path`)."""

    def __init__(self, split: Any):
        self.split = split
        self.paths = list(split["source_path"])
        self.pids = np.asarray(split["pid"])
        self.index = {path: i for i, path in enumerate(self.paths)}

    def donor(self, i: int) -> Donor:
        row = self.split[int(i)]
        if "clean_image" not in row:
            raise ValueError("person donors need the clean images: build with --keep-clean")
        return Donor(to_array(row["clean_image"], "RGB"), to_array(row["parsing"], "L"), row["source_path"])

    def by_path(self, path: str | None) -> Donor | None:
        if path is None:
            return None
        if path not in self.index:
            raise ValueError(f"person donor {path} is not a row of this split; pass the split the rows come from")
        return self.donor(self.index[path])

    def pick(self, rng: np.random.Generator, pid: int) -> Donor | None:
        for _ in range(DONOR_DRAWS):
            i = int(rng.integers(len(self.paths)))
            if self.pids[i] != pid:
                return self.donor(i)
        return None


class OcclusionTransform:
    """Occlude a row's clean image on the fly: `transform(row, epoch) -> Occlusion`."""

    def __init__(self, config: OcclusionConfig, seed: int, people: PersonPool | None = None):
        config.validate()
        if config.fill_name == "texture":
            raise ValueError(
                "the texture fill's donors are not recorded per row, so the transform cannot draw them; "
                "use another fill"
            )
        if config.needs_person_donors and people is None:
            raise ValueError("--occluder person draws donors from the split: pass people=PersonPool(split)")
        self.config, self.seed, self.people = config, seed, people

    @classmethod
    def from_report(
        cls,
        report: Mapping | str | Path,
        split: str,
        people: PersonPool | None = None,
        seed: int | None = None,
        objects_dir: str | None = None,
    ) -> OcclusionTransform:
        """The build's occlusion for the rows of `split` (its occlusion probability included),
        from its `build_report.json` (a dict, the file, or the build folder). `seed` defaults to the
        build's (epoch 0 then gives the built rows); `objects_dir` moves the cut-outs' folder."""
        if isinstance(report, Mapping):
            built: Mapping = report
        else:
            path = Path(report)
            built = json.loads((path / "build_report.json" if path.is_dir() else path).read_text(encoding="utf-8"))
        occlusion = built["occlusion"]
        config = OcclusionConfig.from_report(occlusion)
        prob = config.split_probability(split, occlusion.get("occlude_splits", ()))
        config = replace(config, occlusion_prob=prob, preset=None, objects_dir=objects_dir or config.objects_dir)
        return cls(config, built["seed"] if seed is None else seed, people)

    def _person_donors(self, row: Mapping, epoch: int) -> Sequence[Donor | None]:
        if not self.config.needs_person_donors:
            return ()
        assert self.people is not None
        if epoch == 0 and row.get("person_donors") is not None:
            return [self.people.by_path(path) for path in row["person_donors"]]
        path = row["source_path"]
        return [
            self.people.pick(image_rng(self.seed, path, epoch_stream(epoch, f"person{slot}")), row["pid"])
            for slot in range(self.config.occluders[1])
        ]

    def __call__(self, row: Mapping, epoch: int = 0) -> Occlusion:
        if row.get("clean_image") is None:
            raise ValueError(
                "the row has no clean_image: the transform occludes the clean image, which builds "
                "store with --keep-clean (an occluded image cannot be un-occluded)"
            )
        image, parts = to_array(row["clean_image"], "RGB"), to_array(row["parsing"], "L")
        rng = image_rng(self.seed, row["source_path"], epoch_stream(epoch))
        return occlude(image, parts, rng, self.config, person_donors=self._person_donors(row, epoch))
