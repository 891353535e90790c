"""A small CAL-style DDP training and evaluation run on a build, through occluded_ccreid's loaders.

CAL's data path (P x K identity sampling, its train / test transforms, flip-averaged and
L2-normalised features, cosine distance, features gathered from every rank in row order) with a
small CNN in place of ResNet-50. Losses as in CAL's first epochs: identity cross-entropy, and the
clothes classifier trained on detached features (CAL's adversarial term starts at epoch 25).

    torchrun --nproc-per-node 2 examples/train_cal_ddp.py out/occluded-prcc --epochs 1
    python examples/train_cal_ddp.py out/occluded-prcc       # one process

Runs on CPU with gloo, or on GPUs with NCCL (one per process) when CUDA is available.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import occluded_ccreid as oc  # noqa: E402
from occluded_ccreid.distributed import gather_rows  # noqa: E402
from occluded_ccreid.torch_data import inference_loader, pk_loader  # noqa: E402
from occluded_ccreid.transforms import cal_test_transform, cal_train_transform  # noqa: E402


class SmallCNN(nn.Module):
    """Four strided conv blocks, CAL's max + avg pooling, a BN neck; identity and clothes heads."""

    def __init__(self, num_pids: int, num_clothes: int, width: int = 32):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for out in (width, width * 2, width * 4, width * 4):
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(out), nn.ReLU()]
            channels = out
        self.backbone = nn.Sequential(*layers)
        self.neck = nn.BatchNorm1d(channels * 2)
        self.identity = nn.Linear(channels * 2, num_pids)
        self.clothes = nn.Linear(channels * 2, num_clothes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        maps = self.backbone(images)
        pooled = torch.cat([F.adaptive_max_pool2d(maps, 1), F.adaptive_avg_pool2d(maps, 1)], 1).flatten(1)
        return self.neck(pooled)


def train_one_epoch(
    model: nn.Module, heads: nn.Module, loader: Any, optimizer: torch.optim.Optimizer, device: torch.device, epoch: int
) -> float:
    model.train()
    loader.sampler.set_epoch(epoch)  # every rank the same plan, its own identities
    total, steps = 0.0, 0
    for images, pids, _, clothes in loader:
        images, pids, clothes = images.to(device), pids.to(device), clothes.to(device)
        features = model(images)
        loss = F.cross_entropy(heads.identity(features), pids)
        loss = loss + F.cross_entropy(heads.clothes(features.detach()), clothes)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total, steps = total + float(loss.detach()), steps + 1
    return total / max(steps, 1)


@torch.no_grad()
def extract(model: nn.Module, split: Any, transform: Any, device: torch.device) -> torch.Tensor:
    """Flip-averaged, L2-normalised features of every row of `split`, in row order, on every rank."""
    model.eval()
    features = []
    for images, *_ in inference_loader(split, transform, batch_size=32):
        images = images.to(device)
        features.append(F.normalize(model(images) + model(images.flip(3)), dim=1))
    return gather_rows(torch.cat(features), len(split)).cpu()


def run(
    build: str,
    epochs: int = 1,
    height: int = 64,
    width: int = 32,
    p: int = 2,
    k: int = 2,
    seed: int = 0,
    source: str = "prcc",
) -> dict[str, Any]:
    """Train and evaluate in this process (one rank of an initialised process group, or alone)."""
    torch.manual_seed(seed)  # the same initial weights on every rank (DDP also broadcasts them)
    device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}" if torch.cuda.is_available() else "cpu")
    dsd = oc.load(build)
    loader = pk_loader(dsd["train"], cal_train_transform(height, width), p=p, k=k, seed=seed)
    maps = loader.dataset.label_maps
    net = SmallCNN(len(maps["pid"]), len(maps["clothes_id"])).to(device)
    distributed = dist.is_available() and dist.is_initialized()
    model = (
        nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
        if distributed
        else net
    )
    heads = net  # the classifier heads are parameters of the DDP-wrapped module: their gradients are averaged too
    optimizer = torch.optim.Adam(net.parameters(), lr=3.5e-4, weight_decay=5e-4)
    losses = [train_one_epoch(model, heads, loader, optimizer, device, epoch) for epoch in range(epochs)]
    test = cal_test_transform(height, width)
    qf, gf = (extract(net, dsd[s], test, device) for s in ("query", "gallery"))
    distmat = (-qf @ gf.T).numpy()  # cosine distance, as CAL
    results = {
        name: oc.evaluate_protocol(distmat, dsd["query"], dsd["gallery"], protocol)
        for name, protocol in oc.protocols(source).items()
    }
    if int(os.environ.get("RANK", dist.get_rank() if distributed else 0)) == 0:
        print(f"{len(loader)} steps per epoch, mean loss per epoch {[round(x, 3) for x in losses]}")
        for name, r in results.items():
            print(f"{name}: rank-1 {r['rank1']:.1%}  mAP {r['mAP']:.1%}  ({r['num_valid_queries']} queries)")
    return {
        "losses": losses,
        "steps": len(loader),
        "results": results,
        "query_features": qf,
        "weights": torch.cat([q.detach().flatten().cpu() for q in net.parameters()]),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", help="a build folder or Hub repo id")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--p", type=int, default=2, help="identities per batch on each process")
    parser.add_argument("--k", type=int, default=2, help="images per identity")
    parser.add_argument("--source", default="prcc", help="whose protocols score it (oc.protocols)")
    args = parser.parse_args(argv)
    if "WORLD_SIZE" in os.environ:  # started by torchrun
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        run(args.build, args.epochs, args.height, args.width, args.p, args.k, source=args.source)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


if __name__ == "__main__":
    main()
