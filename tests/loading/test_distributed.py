"""DDP: P x K sampling and inference splitting with 2 and 4 gloo processes, streams shared evenly."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pickle
import socket
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
from test_loading import _row_number, _rows, write_build_folder  # noqa: E402

from occluded_ccreid.distributed import InferenceSampler, PKSampler, gather_rows  # noqa: E402
from occluded_ccreid.features import dataset_features  # noqa: E402
from occluded_ccreid.loading import labels, load  # noqa: E402
from occluded_ccreid.node_split import NodeSplitError, plan_node_rows, shard_size_for  # noqa: E402
from occluded_ccreid.torch_data import inference_loader, pk_loader, stream_loader  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_processes(fn, world_size: int, *args) -> list:
    """Run fn(rank, world_size, out_dir, *args) in `world_size` gloo processes; their return values."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(_entry, args=(fn, world_size, free_port(), tmp, args), nprocs=world_size, join=True)
        return [pickle.loads((Path(tmp) / f"{r}.pkl").read_bytes()) for r in range(world_size)]


def _entry(rank: int, fn, world_size: int, port: int, tmp: str, args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        result = fn(rank, world_size, *args)
        (Path(tmp) / f"{rank}.pkl").write_bytes(pickle.dumps(result))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ddp-build")
    write_build_folder(out)
    return out


# -- what every rank does ---------------------------------------------------------------------------------


def _rank_work(rank: int, world_size: int, build: str, p: int, k: int) -> dict:
    """Two epochs of pk_loader, inference with gathering, and one streamed epoch, with torch.distributed's
    defaults (no rank passed anywhere)."""
    train = load(build, split="train")
    loader = pk_loader(train, p=p, k=k, seed=3, columns=("pid", "source_path"), relabel=False)
    epochs = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        epochs.append([(pids.tolist(), list(paths)) for _, pids, paths in loader])
    query = load(build, split="query")
    features, pids = [], []
    for images, batch_pids, _, _ in inference_loader(query, batch_size=2):
        features.append(images[:, :, 0, 0] * 255)  # a "model" whose features name the row (red + 256 green)
        pids.append(batch_pids)
    gathered = gather_rows(torch.cat(features), len(query))
    gathered_pids = gather_rows(torch.cat(pids), len(query))
    stream = stream_loader(load(build, split="train", streaming=True), batch_size=4, columns=("source_path",))
    streamed = [list(paths) for _, paths in stream]
    return {"epochs": epochs, "len": len(loader), "features": gathered, "pids": gathered_pids, "stream": streamed}


@pytest.mark.parametrize("world_size", [2, 4])
def test_ddp_sampler_inference_and_stream(built, world_size):
    p, k = 1, 2  # 6 identities in the fixture's train split: 1 x 4 ranks per step leaves room for several steps
    results = run_processes(_rank_work, world_size, str(built), p, k)
    train_pids = labels(load(built, split="train"))["pid"]
    single = PKSampler(train_pids, p * world_size, k, seed=3, num_replicas=1, rank=0)
    for epoch in range(2):
        steps = [r["epochs"][epoch] for r in results]
        assert len({len(s) for s in steps}) == 1 and len(steps[0]) > 0  # equal batch counts
        assert all(r["len"] == len(steps[0]) for r in results)
        for step in zip(*steps, strict=True):
            ids = [set(pids) for pids, _ in step]
            assert all(len(i) == p for i in ids)
            assert len(set().union(*ids)) == p * world_size  # disjoint identities within a step
        single.set_epoch(epoch)
        plan = np.array(list(single)).reshape(-1, p * world_size * k)
        paths = load(built, split="train")["source_path"]
        for s, step in enumerate(zip(*steps, strict=True)):
            assert sorted(x for _, batch in step for x in batch) == sorted(paths[i] for i in plan[s])
    assert results[0]["epochs"][0] != results[0]["epochs"][1]

    query = load(built, split="query")
    single_features = torch.cat([images[:, :, 0, 0] * 255 for images, *_ in inference_loader(query, batch_size=2)])
    for r in results:
        assert torch.equal(r["features"], single_features)
        assert r["pids"].tolist() == labels(query)["pid"].tolist()
    rows = [int(round(f[0].item())) + 256 * int(round(f[1].item())) for f in results[0]["features"]]
    assert rows == sorted(rows) and len(set(rows)) == len(query)  # row order, padding gone

    streamed = [r["stream"] for r in results]
    assert len({len(s) for s in streamed}) == 1
    assert len({sum(map(len, s)) for s in streamed}) == 1
    every = Counter(x for s in streamed for batch in s for x in batch)
    assert set(every.values()) == {1}
    assert sum(every.values()) == len(load(built, split="train")) - plan_node_rows([12, 12, 12], world_size, 0).dropped


# -- samplers without processes ---------------------------------------------------------------------------------


def test_inference_sampler_padding():
    blocks = [list(InferenceSampler(10, num_replicas=4, rank=r)) for r in range(4)]
    assert blocks == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 9, 9]]
    assert [list(InferenceSampler(2, num_replicas=3, rank=r)) for r in range(3)] == [[0], [1], [1]]
    assert gather_rows(torch.arange(5), 3).tolist() == [0, 1, 2]  # no process group: one process
    with pytest.raises(ValueError, match="rank"):
        InferenceSampler(4, num_replicas=2, rank=2)


def test_pk_sampler_replicas_need_enough_identities():
    pids = np.repeat(np.arange(5), 4)
    with pytest.raises(ValueError, match="x 2 processes but the data has only 5"):
        PKSampler(pids, p=3, k=2, num_replicas=2, rank=0)
    samplers = [PKSampler(pids, p=2, k=2, seed=1, num_replicas=2, rank=r) for r in range(2)]
    assert len(samplers[0]) == len(samplers[1]) > 0


def test_pk_loader_and_dataset_refuse_a_stream(built):
    from occluded_ccreid.torch_data import ReIDDataset

    stream = load(built, split="train", streaming=True)
    for make in (lambda: pk_loader(stream), lambda: ReIDDataset(stream), lambda: inference_loader(stream)):
        with pytest.raises(TypeError, match="map-style split") as err:
            make()
        assert "\n" not in str(err.value)


# -- streams shared among processes --------------------------------------------------------------------------------


def _write_shards(out: Path, counts: list[int]) -> Path:
    from datasets import Dataset

    (out / "data").mkdir(parents=True)
    specs = [(1 + n % 5, n % 3, 2 * (1 + n % 5)) for n in range(sum(counts))]
    start = 0
    for i, count in enumerate(counts):
        rows = _rows("train", specs[start : start + count], start)
        path = out / "data" / f"train-{i:05d}-of-{len(counts):05d}.parquet"
        Dataset.from_dict(rows, features=dataset_features()).to_parquet(path)
        start += count
    return out


def _stream_rows(out: Path, world_size: int, **kw) -> list[list[list[int]]]:
    """Per rank, per batch: the row numbers (from the pixels)."""
    result = []
    for rank in range(world_size):
        loader = stream_loader(load(out, split="train", streaming=True), num_replicas=world_size, rank=rank, **kw)
        batches = [[_row_number(image) for image in images] for images, *_ in loader]
        assert len(batches) == len(loader)
        result.append(batches)
    return result


def test_stream_even_shards_split_exactly(tmp_path):
    out = _write_shards(tmp_path / "even", [8, 8, 8, 8])
    for world_size in (2, 4):
        ranks = _stream_rows(out, world_size, batch_size=3, num_workers=1)
        assert len({len(r) for r in ranks}) == 1
        rows = [x for r in ranks for b in r for x in b]
        assert sorted(rows) == list(range(32))  # every row once over the ranks
    for epoch in range(2):  # a shuffled stream: the shard order changes per epoch, the same on every rank
        per_rank = []
        for rank in range(2):
            stream = load(out, split="train", streaming=True).shuffle(seed=4, buffer_size=8)
            loader = stream_loader(stream, batch_size=5, num_replicas=2, rank=rank)
            loader.dataset.set_epoch(epoch)
            per_rank.append([_row_number(image) for images, *_ in loader for image in images])
        assert len(per_rank[0]) == len(per_rank[1]) == 16
        assert sorted(per_rank[0] + per_rank[1]) == list(range(32))


def test_stream_uneven_shards_refused_with_the_fix(tmp_path):
    out = _write_shards(tmp_path / "uneven", [10, 10, 10, 2])
    with pytest.raises(NodeSplitError) as err:
        stream_loader(load(out, split="train", streaming=True), num_replicas=2, rank=0)
    message = str(err.value)
    assert "\n" not in message and "(20, 12)" in message and "--shard-size 8" in message, message
    assert shard_size_for(32, 2, 10) == 8 and 16 % shard_size_for(32, 2, 10) == 0


def test_stream_nearly_even_shards_cut_to_equal_rows_and_batches(tmp_path, caplog):
    out = _write_shards(tmp_path / "nearly", [9, 8, 8, 8])  # as byte-sized builds: shards differ by one row
    with pytest.raises(NodeSplitError, match="max_dropped=0.031"):
        stream_loader(load(out, split="train", streaming=True), num_replicas=2, rank=0)
    ranks = _stream_rows(out, 2, batch_size=5, num_workers=2, max_dropped=0.05)
    assert "1 of 33 rows left out" in caplog.text
    assert [[len(b) for b in r] for r in ranks] == [[5, 5, 5, 1]] * 2  # workers' short batches re-cut
    rows = [x for r in ranks for b in r for x in b]
    assert len(rows) == len(set(rows)) == 32
    odd = _write_shards(tmp_path / "odd", [9, 8, 8])  # 3 shards, 2 processes: every rank keeps one row in two
    ranks = _stream_rows(odd, 2, batch_size=4, max_dropped=0.05)
    assert [sum(map(len, r)) for r in ranks] == [12, 12]
    rows = [x for r in ranks for b in r for x in b]
    assert len(set(rows)) == 24 and set(rows) <= set(range(25))


def test_stream_with_unknown_rows_refused_under_ddp(tmp_path):
    out = _write_shards(tmp_path / "filtered", [8, 8])
    stream = load(out, split="train", streaming=True).filter(lambda row: row["pid"] != 1)
    with pytest.raises(ValueError, match="not a plain Parquet stream"):
        stream_loader(stream, num_replicas=2, rank=0)
    assert len(list(stream_loader(stream, batch_size=4))) > 0  # one process: no need to know
