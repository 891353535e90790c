"""The benchmark's reading pipeline: per-image decoding threads (or worker processes) a few batches
ahead, collated in order, and forward passes launched one batch ahead of the wait for their features."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import random
import threading
import time

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from datasets import Dataset  # noqa: E402
from datasets import Image as ImageFeature  # noqa: E402

from occluded_ccreid.benchmark import BenchmarkError, features, preprocessing, reading  # noqa: E402


def _png(value: int) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (3, 5), (value, 255 - value, 7)).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


class _Batches:
    """What `_prefetch` reads: `iter(batch_size=)` over dicts of lists, counting the batches read."""

    def __init__(self, values: list[int], broken: int | None = None) -> None:
        self.rows = [
            {"image": _png(v) if i != broken else {"bytes": b"not a png", "path": None}, "pid": v}
            for i, v in enumerate(values)
        ]
        self.read = 0

    def with_images(self, images: list[dict]) -> _Batches:
        for row, image in zip(self.rows, images, strict=True):
            row["image"] = image
        return self

    def iter(self, batch_size: int):
        for start in range(0, len(self.rows), batch_size):
            self.read += 1
            rows = self.rows[start : start + batch_size]
            yield {"image": [r["image"] for r in rows], "pid": [r["pid"] for r in rows]}


class _ColourExtractor:
    """Prepares an image to its red value after a random pause (so the threads finish out of order)."""

    def __init__(self, pause: float = 0.002) -> None:
        self.pause, self.prepared, self.lock = pause, 0, threading.Lock()

    def prepare_image(self, image: Image.Image) -> int:
        time.sleep(random.uniform(0, self.pause))
        with self.lock:
            self.prepared += 1
        return int(np.asarray(image)[0, 0, 0])

    def collate(self, items: list[int]) -> list[int]:
        return list(items)


def _prefetch(data, extractor, batch_size: int, workers: int):
    with contextlib.closing(reading.ThreadDecoding(extractor, workers)) as decoder:
        yield from reading._prefetch(data, ("image",), extractor, decoder, batch_size)


@pytest.mark.parametrize("batch_size, workers", [(1, 8), (3, 8), (4, 1), (7, 3)])
def test_prefetch_keeps_the_order_of_rows_and_batches(batch_size, workers):
    values = list(range(60))
    seen = []
    for batch, prepared in _prefetch(_Batches(values), _ColourExtractor(), batch_size, workers):
        assert prepared["image"] == batch["pid"]  # each batch's images with its own rows
        assert len(batch["pid"]) == min(batch_size, 60 - len(seen))
        seen.extend(prepared["image"])
    assert seen == values


def test_prefetch_an_image_that_does_not_decode_is_a_benchmark_error():
    for workers in (1, 4):
        batches = _prefetch(_Batches(list(range(20)), broken=13), _ColourExtractor(), 4, workers)
        got = []
        with pytest.raises(BenchmarkError, match="image of the dataset does not decode"):
            for _, prepared in batches:
                got.extend(prepared["image"])
        assert got == list(range(12))  # the batches before the broken one, then the error


def test_prefetch_stopping_early_stops_the_reader():
    data, extractor = _Batches(list(range(200)) * 5), _ColourExtractor(pause=0)
    done = threading.Event()

    def consume() -> None:
        batches = _prefetch(data, extractor, 2, 1)
        next(batches)
        batches.close()  # as a consumer that raises or breaks out of its loop
        done.set()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    assert done.wait(30), "closing the batches hung"
    # Bounded lookahead: a few batches were read and decoded, not the split's 500.
    assert data.read <= 10 and extractor.prepared <= 20


def test_default_workers_use_the_free_cores_on_cuda_only(monkeypatch):
    for cores, cpu, cuda in ((16, 8, 15), (2, 2, 2), (1, 1, 1), (64, 8, 63)):
        monkeypatch.setattr(reading.os, "sched_getaffinity", lambda pid, n=cores: set(range(n)), raising=False)
        assert reading.default_workers() == cpu  # a user's --features callable: no device
        assert reading.default_workers("cpu") == cpu  # the model's torch threads need the cores
        assert reading.default_workers("cuda") == cuda


class _RecordingExtractor(_ColourExtractor):
    device = torch.device("cpu")

    def __init__(self, events: list) -> None:
        super().__init__(pause=0)
        self.events = events

    def __call__(self, prepared: list[int]) -> torch.Tensor:
        self.events.append(("forward", prepared[0]))
        return torch.tensor([[float(v), 1.0] for v in prepared])

    def describe(self) -> dict:
        return {}


def test_extract_split_launches_a_batch_before_collecting_the_previous_one(monkeypatch):
    events: list = []
    real_launch = features.launch

    def launch(extractor, prepared):
        finish = real_launch(extractor, prepared)

        def recorded():
            events.append(("collect", prepared[0]))
            return finish()

        return recorded

    monkeypatch.setattr(features, "launch", launch)
    rows = {
        "image": [_png(v) for v in range(7)],
        "pid": list(range(7)),
        "camid": [0] * 7,
        "clothes_id": [0] * 7,
        "occluded_part": [0] * 7,
        "occluded_ratio": [0.0] * 7,
    }
    split = Dataset.from_dict(rows).cast_column("image", ImageFeature()).to_iterable_dataset()
    result = reading.extract_split(split, ("image",), _RecordingExtractor(events), 3, progress=False, workers=2)
    assert events == [("forward", 0), ("forward", 3), ("collect", 0), ("forward", 6), ("collect", 3), ("collect", 6)]
    assert result.labels["pid"].tolist() == list(range(7))
    expected = np.array([[v, 1.0] for v in range(7)], np.float32)
    assert np.array_equal(
        result.features["image"], torch.nn.functional.normalize(torch.from_numpy(expected), dim=1).numpy()
    )


def test_a_forward_pass_that_raises_stops_the_reader():
    class Failing(_RecordingExtractor):
        def __call__(self, prepared):
            if prepared[0] >= 3:
                raise BenchmarkError("the model failed")
            return super().__call__(prepared)

    rows = {
        "image": [_png(v) for v in range(30)],
        "pid": list(range(30)),
        "camid": [0] * 30,
        "clothes_id": [0] * 30,
        "occluded_part": [0] * 30,
        "occluded_ratio": [0.0] * 30,
    }
    split = Dataset.from_dict(rows).cast_column("image", ImageFeature()).to_iterable_dataset()
    with pytest.raises(BenchmarkError, match="the model failed"):
        reading.extract_split(split, ("image",), Failing([]), 3, progress=False, workers=2)
    assert not [t for t in threading.enumerate() if t.name.startswith(("benchmark-reader", "benchmark-decode"))]


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "P", "I;16"])
def test_decoding_gives_the_pixels_of_pillows_rgb_conversion(mode):
    """RGB PNGs (the builds') are decoded in place, others converted: the pixels are those of
    `Image.open(...).convert("RGB")` either way."""
    rng = np.random.default_rng(3)
    array = rng.integers(0, 256, (37, 23, 4), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(array[..., 0].astype(np.uint16) * 257)
    else:
        image = Image.fromarray(array).convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    decoded = preprocessing.decode_image({"bytes": buffer.getvalue(), "path": None}, "image")
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded), expected)
    rgbx = preprocessing.rgbx_array(decoded)  # Pillow's own layout, exported without a copy
    assert rgbx.shape == (*expected.shape[:2], 4) and rgbx.dtype == np.uint8
    np.testing.assert_array_equal(rgbx[..., :3], expected)


def test_rgbx_array_of_an_image_too_large_to_export_is_converted():
    """Pillow keeps large images in several memory blocks, which the Arrow export refuses."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (2600, 2600, 3), dtype=np.uint8)  # > Pillow's 16 MiB block
    for array in (pixels, np.ascontiguousarray(pixels[:40, :30])):
        rgbx = preprocessing.rgbx_array(Image.fromarray(array))
        assert rgbx.shape == (*array.shape[:2], 4)
        np.testing.assert_array_equal(rgbx[..., :3], array)


# -- decoding in worker processes (--processes) ------------------------------------------------------


class _PixelExtractor:
    """What TransformersExtractor does on the host with its batched transform, with a forward pass
    that returns each image's mean pixel values: features are a function of the prepared pixels."""

    device = torch.device("cpu")
    transform = preprocessing.ImageTransform(
        size=(24, 12),
        resample=int(Image.Resampling.BILINEAR),
        crop=(20, 12),
        rescale=1 / 255,
        mean=(0.5,) * 3,
        std=(0.5,) * 3,
    )

    def prepare_image(self, image):
        return self.transform.resize_and_crop(image)

    def collate(self, items):
        return torch.from_numpy(np.stack(items))

    def __call__(self, prepared):
        pixels = self.transform.to_pixels(prepared, self.device)
        return torch.cat([pixels.mean(dim=(2, 3)), pixels.flatten(1)[:, :5]], dim=1)

    def describe(self) -> dict:
        return {}


def _person_pngs(count: int, broken: int | None = None) -> list[dict]:
    rng = np.random.default_rng(7)
    rows = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.fromarray(
            rng.integers(0, 256, (int(rng.integers(30, 60)), int(rng.integers(10, 30)), 3), dtype=np.uint8)
        ).save(buffer, format="PNG")
        rows.append({"bytes": buffer.getvalue() if i != broken else b"not a png", "path": None})
    return rows


def _split(images: list[dict]):
    n = len(images)
    rows = {
        "image": images,
        "pid": list(range(n)),
        "camid": [0] * n,
        "clothes_id": [0] * n,
        "occluded_part": [0] * n,
        "occluded_ratio": [0.0] * n,
    }
    return Dataset.from_dict(rows).cast_column("image", ImageFeature()).to_iterable_dataset()


def test_decoding_in_processes_gives_the_threads_pixels_and_features():
    extractor, images = _PixelExtractor(), _person_pngs(23)
    batches = {}
    for name, decoder in (
        ("threads", reading.ThreadDecoding(extractor, 3)),
        ("processes", reading.ProcessDecoding(extractor.transform, 2)),
    ):
        with contextlib.closing(decoder):
            batches[name] = [
                (batch["pid"], prepared["image"])
                for batch, prepared in reading._prefetch(
                    _Batches(list(range(23))).with_images(images), ("image",), extractor, decoder, 5
                )
            ]
    assert len(batches["processes"]) == 5
    for (pids, ours), (theirs_pids, theirs) in zip(batches["processes"], batches["threads"], strict=True):
        assert pids == theirs_pids and ours.dtype == torch.uint8 and torch.equal(ours, theirs)
    threads = reading.extract_split(_split(images), ("image",), extractor, 4, progress=False, workers=2)
    processes = reading.extract_split(_split(images), ("image",), extractor, 4, progress=False, processes=2)
    assert np.array_equal(threads.features["image"], processes.features["image"])
    assert all(np.array_equal(threads.labels[c], processes.labels[c]) for c in threads.labels)
    assert not multiprocessing.active_children()  # extract_split stopped the workers it started
    # One decoder for several splits (as the command reads query and gallery): its workers serve both.
    with contextlib.closing(reading.decoding(extractor, processes=2)) as decoder:
        for _ in range(2):
            again = reading.extract_split(_split(images), ("image",), extractor, 4, progress=False, decoder=decoder)
            assert np.array_equal(again.features["image"], threads.features["image"])
        workers = multiprocessing.active_children()
        assert len(workers) == 2
    assert not any(worker.is_alive() for worker in workers)


def test_decoding_in_processes_reports_a_broken_image_and_stops_its_workers():
    with pytest.raises(BenchmarkError, match="image of the dataset does not decode"):
        reading.extract_split(
            _split(_person_pngs(12, broken=9)), ("image",), _PixelExtractor(), 4, progress=False, processes=2
        )
    assert not multiprocessing.active_children()
    # Stopped early (a consumer that breaks out of its loop): the reader stops, the decoder's owner closes it.
    extractor, data = _PixelExtractor(), _Batches(list(range(400))).with_images(_person_pngs(400))
    with contextlib.closing(reading.ProcessDecoding(extractor.transform, 2)) as decoder:
        batches = reading._prefetch(data, ("image",), extractor, decoder, 4)
        next(batches)
        batches.close()
        assert data.read <= 10  # a few batches ahead, not the split's 100
    assert not multiprocessing.active_children()


def test_processes_are_refused_or_replaced_where_they_cannot_decode(monkeypatch, caplog):
    with pytest.raises(BenchmarkError, match="--features callable"):
        reading.decoding(_ColourExtractor(), 2, processes=2)  # no transform: takes the decoded images itself
    processor_as_is = _PixelExtractor()
    processor_as_is.transform = None  # a processor the batched transform does not reproduce
    assert isinstance(reading.decoding(processor_as_is, 2, processes=2), reading.ThreadDecoding)
    assert "decoding in 2 threads instead" in caplog.text
    monkeypatch.setattr(reading, "spawn_problem", lambda: "worker processes re-import the main program")
    with pytest.raises(BenchmarkError, match="--processes 2: worker processes re-import"):
        reading.decoding(_PixelExtractor(), 2, processes=2)
    assert isinstance(reading.decoding(_PixelExtractor(), 2), reading.ThreadDecoding)


def test_a_decoding_worker_killed_ends_in_a_one_line_error():
    """As the kernel's out-of-memory killer would: SIGKILL to a worker between two splits."""
    import os
    import signal

    extractor, images = _PixelExtractor(), _person_pngs(8)
    with contextlib.closing(reading.decoding(extractor, processes=2)) as decoder:
        reading.extract_split(_split(images), ("image",), extractor, 4, progress=False, decoder=decoder)
        for worker in multiprocessing.active_children():
            os.kill(worker.pid, signal.SIGKILL)
        with pytest.raises(BenchmarkError, match="decoding worker process stopped unexpectedly"):
            for _ in range(50):  # until the pool has noticed
                reading.extract_split(_split(images), ("image",), extractor, 4, progress=False, decoder=decoder)
                time.sleep(0.1)
    assert not multiprocessing.active_children()
