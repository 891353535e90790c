"""How much does `--precision bf16` (CPU bf16 autocast) change what a build produces, next to fp32?

bf16 rounds the logits, so argmax labels can flip where two classes are close; what matters is
whether that changes the part maps and, through them, the occluder `occlude()` draws. Random
weights give near-tied logits everywhere and exaggerate flips, and users run trained models, so a
SegFormer-B0-shaped model (SegformerConfig defaults, Pascal-Person-Part's 7 labels) is trained
from random init (fp32, AdamW, fixed seed, ~97% held-out pixel accuracy) on synthetic pedestrians
with true part maps (tests/support/synthetic.py's drawing, PRCC-like crop sizes and aspects, loose
framing), in the parse-size box with the builder's default keep-aspect sizing. It is saved with
save_pretrained and loaded through the builder's real path, `SegformerParser(path, "cpu", box,
precision=...)`, as fp32 and bf16; a random-weight model of the same shape is the contrast.
Printed per model on held-out crops: pixel accuracy against the true maps, pixels / whole maps on
which fp32 and bf16 agree, and, with both maps put through `occlude()` with the same per-image
generator, images with the same occluded part and pool scale, occluder-mask IoU (mean, min) and
the largest |difference| of `occluded_ratio`; then fp32 vs bf16 forward speed at the parse size,
batch 8, interleaved in one run.

    python benchmarks/precision_agreement.py            # ~4 min on 2 CPU cores, most of it training
    python benchmarks/precision_agreement.py --quick    # smoke run, < 30 s (an undertrained model)

Deterministic for a given machine and thread count (seeded data, init, batches and occluders).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "support"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from synthetic import draw_person  # noqa: E402
from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from builder.parsing.network import cpu_has_native_bf16, fit_size  # noqa: E402
from builder.parsing.segmenter import SegformerParser  # noqa: E402
from occluded_ccreid.occlusion import image_rng, occlude  # noqa: E402

LABELS = ["background", "head", "torso", "upper arms", "lower arms", "upper legs", "lower legs"]
SEED = 0
Crop = tuple[str, np.ndarray, np.ndarray]  # (source path, HxWx3 uint8 image, HxW uint8 true part map)


def make_crops(split: str, n: int, seed: int) -> list[Crop]:
    """PRCC-like crops: 240-520 px tall, width 0.35-0.55 of that, person at 70-100% scale, off-centre."""
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(n):
        height = int(rng.integers(240, 521))
        width = int(round(height * rng.uniform(0.35, 0.55)))
        scale = float(rng.uniform(0.7, 1.0))
        slack = (1 - scale) / 2
        offset = (float(rng.uniform(-slack, slack)), float(rng.uniform(-slack, slack)))
        name = f"{split}/{i:05d}.jpg"
        image, parts = draw_person(height, width, name, (split, i), scale=scale, offset=offset)
        crops.append((name, image, parts))
    return crops


def model_inputs(crops: list[Crop], box: tuple[int, int], keep_aspect: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(normalised inputs, label maps) per input size, sized as the builder sizes them (`fit_size`)
    and resized as SegformerParser.prepare resizes: training sees what parsing sees."""
    processor = SegformerImageProcessor()
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (processor.image_mean, processor.image_std))
    groups: dict[tuple[int, int], list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for _, image, parts in crops:
        size = fit_size(*parts.shape, box) if keep_aspect else box
        x = F.interpolate(
            torch.from_numpy(image).permute(2, 0, 1)[None],
            size=size,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        ).float()
        y = F.interpolate(torch.from_numpy(parts)[None, None].float(), size=size, mode="nearest-exact")
        groups.setdefault(size, []).append(((x / 255 - mean) / std, y[:, 0].long()))
    return [(torch.cat([g[0] for g in group]), torch.cat([g[1] for g in group])) for group in groups.values()]


def segformer(seed: int) -> SegformerForSemanticSegmentation:
    """B0 (SegformerConfig's defaults) with Pascal-Person-Part labels, which PartMapper maps 1:1."""
    torch.manual_seed(seed)
    return SegformerForSemanticSegmentation(
        SegformerConfig(id2label=dict(enumerate(LABELS)), label2id={name: i for i, name in enumerate(LABELS)})
    )


def save(model: SegformerForSemanticSegmentation, out: Path) -> Path:
    model.eval().save_pretrained(out)
    SegformerImageProcessor().save_pretrained(out)
    return out


def train(
    crops: list[Crop], box: tuple[int, int], keep_aspect: bool, steps: int, batch: int, lr: float
) -> SegformerForSemanticSegmentation:
    groups = model_inputs(crops, box, keep_aspect)
    weights = torch.tensor([len(x) for x, _ in groups], dtype=torch.float)
    model = segformer(SEED).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.1)
    order = torch.Generator().manual_seed(SEED)
    for step in range(1, steps + 1):
        # One input size per batch, as in a build; sizes drawn in proportion to their crops.
        x, y = groups[int(torch.multinomial(weights, 1, generator=order))]
        idx = torch.randint(len(x), (batch,), generator=order)
        logits = F.interpolate(
            model(pixel_values=x[idx]).logits, size=y.shape[1:], mode="bilinear", align_corners=False
        )
        loss = F.cross_entropy(logits, y[idx])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % max(1, steps // 5) == 0:
            print(f"  step {step:4d}/{steps}  loss {loss.item():.3f}", flush=True)
    return model


def parse(parser: SegformerParser, crops: list[Crop], batch: int = 8) -> list[np.ndarray]:
    maps: list[np.ndarray] = []
    for i in range(0, len(crops), batch):
        chunk = crops[i : i + batch]
        maps += parser([c[0] for c in chunk], [c[1] for c in chunk])
    return maps


def compare(crops: list[Crop], fp32: list[np.ndarray], bf16: list[np.ndarray]) -> dict[str, str]:
    """fp32 vs bf16 part maps, and the occluders `occlude()` draws from each with the same generator."""
    pixels = sum(m.size for m in fp32)
    same_pixels = sum(int((a == b).sum()) for a, b in zip(fp32, bf16, strict=True))
    truth = {
        p: sum(int((m == c[2]).sum()) for m, c in zip(ms, crops, strict=True)) / pixels
        for p, ms in (("fp32", fp32), ("bf16", bf16))
    }
    same_draw, ious, ratio_diffs = 0, [], []
    for (name, image, _), a, b in zip(crops, fp32, bf16, strict=True):
        oa, ob = occlude(image, a, image_rng(SEED, name)), occlude(image, b, image_rng(SEED, name))
        same_draw += (oa.part, oa.pool_scale) == (ob.part, ob.pool_scale)
        # masks are 8-bit alphas: soft IoU, sum of min over sum of max (the plain IoU for 0/255 masks)
        union = int(np.maximum(oa.mask, ob.mask).sum(dtype=np.int64))
        ious.append(int(np.minimum(oa.mask, ob.mask).sum(dtype=np.int64)) / union if union else 1.0)
        ratio_diffs.append(abs(oa.ratio - ob.ratio))
    n = len(crops)
    return {
        "pixel accuracy vs truth, fp32": f"{truth['fp32']:.2%}",
        "pixel accuracy vs truth, bf16": f"{truth['bf16']:.2%}",
        "pixels with the same part": f"{same_pixels / pixels:.4%}",
        "images with identical maps": f"{sum(np.array_equal(a, b) for a, b in zip(fp32, bf16, strict=True)) / n:.1%}",
        "images, same part + pool scale": f"{same_draw / n:.1%}",
        "occluder mask IoU, mean": f"{np.mean(ious):.4f}",
        "occluder mask IoU, min": f"{min(ious):.4f}",
        "max |occluded_ratio diff|": f"{max(ratio_diffs):.4f}",
    }


def forward_speed(
    parsers: dict[str, SegformerParser], crops: list[Crop], box: tuple[int, int], reps: int
) -> dict[str, float]:
    """Median seconds of `infer` (normalise + forward) on 8 crops resized to the full parse size,
    precisions interleaved so load changes hit both alike."""
    tensors = [
        F.interpolate(
            torch.from_numpy(c[1]).permute(2, 0, 1)[None],
            size=box,
            mode="bilinear",
            align_corners=False,
            antialias=True,
        )[0]
        for c in crops[:8]
    ]
    times: dict[str, list[float]] = {p: [] for p in parsers}
    for rep in range(reps + 1):
        for precision, parser in parsers.items():
            start = time.perf_counter()
            parser.infer(tensors)
            if rep:  # the first round warms up oneDNN's kernels
                times[precision].append(time.perf_counter() - start)
    return {p: statistics.median(t) for p, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: small data, few steps, < 1 min")
    ap.add_argument("--parse-size", default="256x128", help="HxW box for training and parsing (default 256x128)")
    ap.add_argument(
        "--no-keep-aspect",
        action="store_true",
        help="stretch crops to the parse size, as `builder build --no-keep-aspect` does",
    )
    args = ap.parse_args(argv)
    box = tuple(int(v) for v in args.parse_size.lower().split("x"))
    keep_aspect = not args.no_keep_aspect
    n_train, n_test, steps, reps = (100, 24, 40, 2) if args.quick else (400, 200, 800, 10)
    started = time.perf_counter()
    hf_logging.disable_progress_bar()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native CPU bf16: {cpu_has_native_bf16()}")
    train_crops, test_crops = make_crops("train", n_train, SEED), make_crops("test", n_test, SEED + 1)
    background = sum(int((c[2] == 0).sum()) for c in test_crops) / sum(c[2].size for c in test_crops)
    with tempfile.TemporaryDirectory() as tmp:
        # Small batches, many steps: from scratch, the number of updates is what gets B0 past its plateau.
        print(
            f"training B0 from scratch on {n_train} crops in a {box[0]}x{box[1]} box "
            f"({'aspect kept' if keep_aspect else 'stretched'}): {steps} steps of 4, fp32 AdamW"
        )
        t = time.perf_counter()
        models = {
            "trained": save(train(train_crops, box, keep_aspect, steps, 4, 1e-3), Path(tmp) / "trained"),
            "random": save(segformer(SEED + 1), Path(tmp) / "random"),
        }
        print(f"  {time.perf_counter() - t:.0f} s")
        rows, speed = {}, {}
        for kind, path in models.items():
            parsers = {
                p: SegformerParser(str(path), "cpu", box, keep_aspect=keep_aspect, precision=p)
                for p in ("fp32", "bf16")
            }
            rows[kind] = compare(test_crops, *(parse(parsers[p], test_crops) for p in ("fp32", "bf16")))
            if kind == "trained":  # weights do not change the cost: time one model
                speed = forward_speed(parsers, test_crops, box, reps)
    print(
        f"\n{n_test} held-out crops (PRCC-like sizes), parsed in a {box[0]}x{box[1]} box, fp32 vs bf16; "
        f"background is {background:.1%} of their pixels (an all-background map's accuracy)"
    )
    print(f"{'':34s}{'trained':>12s}{'random':>12s}")
    for metric in rows["trained"]:
        print(f"{metric:34s}{rows['trained'][metric]:>12s}{rows['random'][metric]:>12s}")
    print(f"\nforward (normalise + model) at {box[0]}x{box[1]}, batch 8, median of {reps}, interleaved:")
    print(
        f"  fp32 {speed['fp32'] / 8 * 1e3:.1f} ms/image   bf16 {speed['bf16'] / 8 * 1e3:.1f} ms/image   "
        f"bf16 speed-up {speed['fp32'] / speed['bf16']:.2f}x"
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
