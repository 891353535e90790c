"""Loading a build folder, the PyTorch recipe (streaming workers, P x K sampling) and the exports."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before datasets is imported: tests never touch the network
os.environ["HF_DATASETS_OFFLINE"] = "1"

import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import occluded_ccreid
from occluded_ccreid.evaluation import evaluate_protocol, protocols
from occluded_ccreid.export import JPEG_MEAN_ERROR_BOUND, pid2clothes, to_torchreid, to_tuples
from occluded_ccreid.features import dataset_features
from occluded_ccreid.loading import labels, load

torch = pytest.importorskip("torch")
from occluded_ccreid.torch_data import PKSampler, ReIDDataset, pk_loader, relabel_maps, stream_loader  # noqa: E402

# -- a small hand-written build folder ---------------------------------------------------------------------
# Same folder layout and features as the builder's output, written directly so that every image
# encodes its row number in its pixels (red = n % 256, green = n // 256): a test can then check the
# transform ran on the right row's image. The same recipe is also run on a real build (conftest's
# `prcc_build`) further down.

SHARDS = {"train": 3, "query": 1, "gallery": 1}


def _rows(split: str, specs: list[tuple[int, int, int]], first: int) -> dict[str, list]:
    rows: dict[str, list] = {name: [] for name in dataset_features()}
    for n, (pid, camid, clothes_id) in enumerate(specs, start=first):
        cam = "ABC"[camid]
        if split == "train":
            path = f"rgb/train/{pid:03d}/{cam}_cropped_rgb{n:03d}.jpg"
        else:
            path = f"rgb/test/{cam}/{pid:03d}/{n:03d}.jpg"
        rows["image"].append(Image.new("RGB", (4, 6), (n % 256, n // 256, 7)))
        rows["pid"].append(pid)
        rows["camid"].append(camid)
        rows["clothes_id"].append(clothes_id)
        rows["occluded_part"].append(n % 7)
        rows["pool_scale"].append(0 if n % 7 == 0 else 15)
        rows["occluded_ratio"].append(0.0 if n % 7 == 0 else 0.25)
        rows["occluder"].append("none" if n % 7 == 0 else "parts")
        rows["fill"].append("none" if n % 7 == 0 else "add")
        rows["coverage_in_band"].append(True)
        # the part map is part n % 7 everywhere, the mask 0 or 255 everywhere
        rows["part_visibility"].append([1.0 - n % 2 if p == n % 7 else None for p in range(1, 7)])
        rows["occluders"].append(
            [] if n % 7 == 0 else [{"occluder": "parts", "part": n % 7, "pool_scale": 15, "source": None}]
        )
        rows["person_donors"].append([])
        rows["occlusion_mask"].append(Image.new("L", (4, 6), 255 * (n % 2)))
        rows["parsing"].append(Image.new("L", (4, 6), n % 7))
        rows["source_path"].append(path)
    return rows


def _specs() -> dict[str, list[tuple[int, int, int]]]:
    """PRCC-like labels: clothes 2*pid for cameras A, B and 2*pid+1 for camera C."""
    train = [(pid, cam, 2 * pid + (cam == 2)) for pid in range(1, 7) for cam in (0, 1, 2) for _ in range(pid % 3 + 1)]
    gallery = [(pid, 0, 2 * pid) for pid in range(10, 16) for _ in range(2)]
    query = [(pid, cam, 2 * pid + (cam == 2)) for pid in range(10, 16) for cam in (1, 2)]
    return {"train": train, "query": query, "gallery": gallery}


def write_build_folder(out: Path, with_configs: bool = True) -> dict[str, int]:
    from datasets import Dataset

    features = dataset_features()
    specs = _specs()
    (out / "data").mkdir(parents=True)
    first = 0
    for split, split_specs in specs.items():
        n = SHARDS[split]
        for i, part in enumerate(np.array_split(np.arange(len(split_specs)), n)):
            rows = _rows(split, [split_specs[j] for j in part], first + int(part[0]))
            Dataset.from_dict(rows, features=features).to_parquet(out / "data" / f"{split}-{i:05d}-of-{n:05d}.parquet")
        first += len(split_specs)
    header = "---\nconfigs:\n- config_name: default\n  data_files:\n"
    header += "".join(f'  - split: {s}\n    path: "data/{s}-*"\n' for s in specs)
    readme = (header if with_configs else "---\nlicense: other\n") + "---\n# Occluded-PRCC (test build)\n"
    (out / "README.md").write_text(readme)
    (out / "build_report.json").write_text("{}")
    return {s: len(v) for s, v in specs.items()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, dict[str, int]]:
    out = tmp_path_factory.mktemp("occluded-prcc")
    return out, write_build_folder(out)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("hf-cache"))


def source_paths(out: Path, split: str) -> list[str]:
    return [row["source_path"] for row in load(out, split=split, streaming=True).select_columns(["source_path"])]


def _row_number(image_tensor) -> int:
    """Inverse of the fixture's pixel encoding, from the transformed tensor."""
    red, green = (int(round(float(image_tensor[c, 0, 0]) * 255)) for c in (0, 1))
    return red + 256 * green


# -- load -----------------------------------------------------------------------------------------------


def test_load_build_folder(built, cache_dir):
    out, sizes = built
    dsd = load(out, cache_dir=cache_dir)
    assert {s: len(dsd[s]) for s in dsd} == sizes
    assert dsd["train"].features == dataset_features()
    train = load(str(out), split="train", cache_dir=cache_dir)
    assert len(train) == sizes["train"]
    assert isinstance(train[0]["image"], Image.Image)


def test_load_folder_without_configs_reads_shard_names(tmp_path, cache_dir):
    sizes = write_build_folder(tmp_path / "out", with_configs=False)
    stream = load(tmp_path / "out", split="query", streaming=True)
    assert sum(1 for _ in stream) == sizes["query"]
    assert load(tmp_path / "out", cache_dir=cache_dir)["gallery"].num_rows == sizes["gallery"]


def test_load_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nowhere"))


def test_labels_streaming_and_not_agree(built, cache_dir):
    out, _ = built
    for split in ("train", "query"):
        a = labels(load(out, split=split, cache_dir=cache_dir))
        b = labels(load(out, split=split, streaming=True))
        for column in ("pid", "camid", "clothes_id"):
            np.testing.assert_array_equal(a[column], b[column])


def test_evaluate_a_published_setting_from_loaded_splits(built, cache_dir):
    out, _ = built
    query, gallery = (load(out, split=s, cache_dir=cache_dir) for s in ("query", "gallery"))
    q, g = labels(query), labels(gallery)
    dist = (q["pid"][:, None] != g["pid"][None, :]).astype(np.float32)  # a perfect model
    for name, protocol in protocols("prcc").items():
        for source in ((query, gallery), (q, g)):
            result = evaluate_protocol(dist, *source, protocol)
            assert result["rank1"] == 1.0 and result["mAP"] == 1.0, name
            assert result["num_valid_queries"] == 6


# -- the PyTorch recipe -----------------------------------------------------------------------------------


def _tensor_and_worker(image):
    """A user transform that also says which DataLoader worker ran it."""
    from occluded_ccreid.torch_data import to_tensor

    return to_tensor(image), torch.utils.data.get_worker_info().id


def test_streaming_loader_two_workers_every_row_once(built):
    out, sizes = built
    stream = load(out, split="train", streaming=True)
    assert stream.num_shards == SHARDS["train"] >= 2
    columns = ("pid", "camid", "clothes_id", "source_path")
    loader = stream_loader(stream, _tensor_and_worker, batch_size=5, num_workers=2, columns=columns)
    assert loader.num_workers == 2
    seen: list[str] = []
    workers: set[int] = set()
    for (images, worker_ids), _pids, _camids, _clothes, paths in loader:
        assert images.shape[1:] == (3, 6, 4) and images.dtype == torch.float32
        for image, path in zip(images, paths, strict=True):
            assert f"rgb{_row_number(image):03d}.jpg" in path  # the transform saw this row's image
        seen.extend(paths)
        workers.update(worker_ids.tolist())
    assert workers == {0, 1}
    assert len(seen) == sizes["train"]
    assert Counter(seen) == Counter(source_paths(out, "train"))  # every row, exactly once


def test_streaming_loader_more_workers_than_shards(built, caplog):
    out, sizes = built
    stream = load(out, split="query", streaming=True)  # one file, one row group
    with caplog.at_level(logging.WARNING, logger="occluded_ccreid.torch_data"):
        loader = stream_loader(stream, batch_size=4, num_workers=2, columns=("source_path",))
    assert loader.num_workers == stream.num_shards == 1
    assert "fewer than num_workers" in caplog.text
    paths = [p for _, batch in loader for p in batch]
    assert sorted(paths) == sorted(source_paths(out, "query"))


def test_streaming_with_a_user_transform(built):
    out, _ = built
    stream = load(out, split="gallery", streaming=True)
    to_array = lambda img: torch.from_numpy(np.asarray(img, dtype=np.float32)).mean()  # noqa: E731
    samples = list(stream_loader(stream, to_array, batch_size=None, relabel=True))
    assert len(samples) == 12 and all(float(v) > 0 for v, *_ in samples)
    assert sorted({pid for _, pid, _, _ in samples}) == list(range(6))


def test_pk_sampler_batches(built, cache_dir):
    out, _ = built
    train = load(out, split="train", cache_dir=cache_dir)
    pids = labels(train)["pid"]
    p, k = 3, 4
    sampler = PKSampler(train, p=p, k=k, seed=1)
    first = list(sampler)
    assert len(first) % (p * k) == 0 and len(first) > 0
    for b in range(0, len(first), p * k):
        counts = Counter(pids[first[b : b + p * k]].tolist())
        assert len(counts) == p and set(counts.values()) == {k}
    # identities with fewer than K images are drawn with replacement
    assert min(Counter(pids.tolist()).values()) < k
    # deterministic per (seed, epoch); the epoch advances per iteration
    again = PKSampler(pids, p=p, k=k, seed=1)
    assert list(again) == first
    assert list(again) == list(sampler)
    again.set_epoch(0)
    assert list(again) == first
    assert list(PKSampler(pids, p=p, k=k, seed=2)) != first
    with pytest.raises(ValueError, match="only 6"):
        PKSampler(pids, p=7, k=2)


def test_pk_loader_yields_balanced_tensor_batches(built, cache_dir):
    out, _ = built
    train = load(out, split="train", cache_dir=cache_dir)
    loader = pk_loader(train, p=2, k=2, seed=0)
    batches = list(loader)
    assert len(batches) == len(loader) > 0
    for images, pids, _camids, clothes in batches:
        assert images.shape == (4, 3, 6, 4)
        assert sorted(Counter(pids.tolist()).values()) == [2, 2]
        assert set(pids.tolist()) <= set(range(6)) and set(clothes.tolist()) <= set(range(12))  # relabelled
    maps = loader.dataset.label_maps
    assert (len(maps["pid"]), len(maps["clothes_id"])) == (6, 12)
    assert maps == relabel_maps(load(out, split="train", streaming=True))
    dataset = ReIDDataset(train, columns=("pid", "source_path"))
    item = dataset[3]
    assert f"rgb{_row_number(item[0]):03d}.jpg" in item[2]
    batch = dataset.__getitems__([3, 0, 3])  # what the DataLoader calls for a batch
    for got, index in zip(batch, [3, 0, 3], strict=True):
        expected = dataset[index]
        assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


# -- exports -------------------------------------------------------------------------------------------------


def test_to_tuples_in_memory_and_on_disk(built, cache_dir, tmp_path):
    out, sizes = built
    query = load(out, split="query", cache_dir=cache_dir)
    q = labels(query)
    in_memory = to_tuples(query)
    assert len(in_memory) == sizes["query"]
    assert isinstance(in_memory[0][0], Image.Image)
    label_rows = zip(q["pid"].tolist(), q["camid"].tolist(), q["clothes_id"].tolist(), strict=True)
    assert [t[1:] for t in in_memory] == list(label_rows)

    on_disk = to_tuples(query, image_dir=tmp_path / "images")
    sources = source_paths(out, "query")
    for (path, *labels_), (image, *expected), source in zip(on_disk, in_memory, sources, strict=True):
        assert labels_ == expected
        assert Path(path).is_absolute() and Path(path).as_posix().endswith(source)  # the source's own name
        with Image.open(path) as written:
            assert written.format == "JPEG"  # as a .jpg name says, within the bound of export.images
            error = np.abs(np.asarray(written, dtype=np.int16) - np.asarray(image, dtype=np.int16))
            assert error.mean() <= JPEG_MEAN_ERROR_BOUND and error.max() <= 1  # flat colours: off by <= 1
    assert to_tuples(query, image_dir=tmp_path / "images") == on_disk  # deterministic names

    streamed = to_tuples(load(out, split="query", streaming=True), image_dir=tmp_path / "images")
    assert streamed == on_disk


def test_relabel_torchreid_and_pid2clothes(built, cache_dir, tmp_path):
    out, _ = built
    train = load(out, split="train", cache_dir=cache_dir)
    cal = to_tuples(train, image_dir=tmp_path / "img", relabel=True)
    assert sorted({t[1] for t in cal}) == list(range(6))
    assert sorted({t[3] for t in cal}) == list(range(12))
    matrix = pid2clothes(cal)
    assert matrix.shape == (6, 12) and (matrix.sum(axis=1) == 2).all()
    reid = to_torchreid(train, tmp_path / "img", relabel=True)
    assert reid == [(path, pid, camid, 0) for path, pid, camid, _ in cal]
    assert to_torchreid(train, tmp_path / "img", dsetid=None)[0] == to_tuples(train, tmp_path / "img")[0][:3]


def test_duplicate_source_paths_get_distinct_files(tmp_path):
    from datasets import Dataset

    rows = _rows("query", [(1, 1, 2), (1, 1, 2)], 0)
    rows["source_path"] = ["rgb/test/B/001/x.png"] * 2
    split = Dataset.from_dict(rows, features=dataset_features())
    paths = [t[0] for t in to_tuples(split, image_dir=tmp_path)]
    assert [Path(p).name for p in paths] == ["x.png", "x__dup1.png"]
    rows["source_path"] = ["../escape.png"] * 2
    with pytest.raises(ValueError, match="outside"):
        to_tuples(Dataset.from_dict(rows, features=dataset_features()), image_dir=tmp_path)


# -- on a real build (builder/ on a synthetic PRCC tree, conftest's `prcc_build`) ---------------------------


def _fixed_size_tensor(image):
    """A user transform: one size for batching (synthetic images come in several sizes)."""
    from occluded_ccreid.torch_data import to_tensor

    return to_tensor(image.resize((16, 32)))


def test_real_build_streams_every_row_once_with_two_workers(prcc_build, cache_dir):
    stream = load(prcc_build, split="train", streaming=True)
    assert stream.num_shards >= 2
    columns = ("pid", "camid", "clothes_id", "source_path")
    loader = stream_loader(stream, _fixed_size_tensor, batch_size=4, num_workers=2, columns=columns)
    assert loader.num_workers == 2
    rows = [
        (path, int(pid), int(cam), int(clo))
        for _, pids, cams, clos, paths in loader
        for path, pid, cam, clo in zip(paths, pids, cams, clos, strict=True)
    ]
    train = load(prcc_build, split="train", cache_dir=cache_dir)
    expected = labels(train, columns)
    assert Counter(rows) == Counter(
        zip(
            expected["source_path"].tolist(),
            expected["pid"].tolist(),
            expected["camid"].tolist(),
            expected["clothes_id"].tolist(),
            strict=True,
        )
    )
    assert len(rows) == len(train)


def test_real_build_pk_loader_evaluate_and_export(prcc_build, cache_dir, tmp_path):
    dsd = load(prcc_build, cache_dir=cache_dir)
    assert {"train", "query", "gallery"} <= set(dsd)
    assert set(dataset_features()) <= set(dsd["train"].features)
    images, pids, _, _ = next(iter(pk_loader(dsd["train"], _fixed_size_tensor, p=2, k=2)))
    assert images.shape == (4, 3, 32, 16) and sorted(Counter(pids.tolist()).values()) == [2, 2]

    q, g = labels(dsd["query"]), labels(dsd["gallery"])
    perfect = (q["pid"][:, None] != g["pid"][None, :]).astype(np.float32)
    for name, protocol in protocols("occluded-prcc").items():
        result = evaluate_protocol(perfect, dsd["query"], dsd["gallery"], protocol)
        assert result["num_valid_queries"] > 0 and result["mAP"] == 1.0, name

    tuples = to_tuples(dsd["gallery"], image_dir=tmp_path)
    assert len(tuples) == len(dsd["gallery"]) and all(Path(t[0]).is_file() for t in tuples)
    assert [t[1] for t in tuples] == g["pid"].tolist()


# -- the package stays light ----------------------------------------------------------------------------------


def test_package_imports_without_torch_or_transformers():
    code = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name.split('.')[0] in ('torch', 'transformers'):\n"
        "            raise ImportError('blocked ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import occluded_ccreid, occluded_ccreid.evaluation, occluded_ccreid.loading, occluded_ccreid.export\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(occluded_ccreid.__file__).parent.parent)
