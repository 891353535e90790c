"""SegformerParser: part maps independent of batch composition, the staged API, input sizes, options."""

import threading

import numpy as np
import pytest
import torch

from builder.errors import BuildError
from builder.parsing.network import fit_size
from builder.parsing.segmenter import SegformerParser

# (H, W) of crops: tall, very tall, square-ish, tiny, and one already at the parse size
SHAPES = [(96, 48), (130, 40), (64, 60), (24, 10), (64, 32), (101, 37), (96, 48)]


def images(shapes=SHAPES, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in shapes]


@pytest.fixture(scope="module")
def parser(tiny_model):
    return SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False)


@pytest.mark.parametrize("keep_aspect, precision", [(False, "fp32"), (True, "fp32"), (False, "bf16")])
def test_part_maps_do_not_depend_on_the_batch(tiny_model, keep_aspect, precision):
    model = SegformerParser(str(tiny_model), "cpu", (96, 64), keep_aspect=keep_aspect, precision=precision)
    pictures = images()
    paths = [f"img{i}.jpg" for i in range(len(pictures))]
    together = model(paths, pictures)
    alone = [model([p], [im])[0] for p, im in zip(paths, pictures, strict=True)]
    reversed_ = model(paths[::-1], pictures[::-1])[::-1]
    for a, b, c, image in zip(together, alone, reversed_, pictures, strict=True):
        assert a.shape == image.shape[:2] and a.dtype == np.uint8 and a.max() <= 6
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_staged_steps_give_what_call_gives(parser):
    pictures = images()
    expected = parser([f"{i}" for i in range(len(pictures))], pictures)
    prepared = [parser.prepare(im) for im in pictures]
    assert all(t.dtype == torch.uint8 and tuple(t.shape) == (3, 64, 32) for t in prepared)
    logits = parser.infer(prepared)
    assert logits.shape[0] == len(pictures) and logits.dtype == torch.float32
    for row, image, want in zip(logits, pictures, expected, strict=True):
        assert np.array_equal(parser.postprocess(row, image.shape[:2]), want)
    with pytest.raises(ValueError, match="one input size"):
        parser.infer([torch.zeros(3, 64, 32, dtype=torch.uint8), torch.zeros(3, 32, 32, dtype=torch.uint8)])


def test_postprocess_is_the_full_size_argmax_of_interpolated_logits(parser):
    """numpy's argmax (used on CPU for speed) picks what torch's does, ties included (the first
    maximum): small integer logits make many labels tie exactly after interpolation."""
    generator = torch.Generator().manual_seed(0)
    for logits in (
        torch.randn(parser.model.config.num_labels, 16, 8, generator=generator),
        torch.randint(-1, 2, (parser.model.config.num_labels, 16, 8), generator=generator).float(),
    ):
        full = torch.nn.functional.interpolate(logits[None], size=(93, 41), mode="bilinear", align_corners=False)
        expected = parser.mapper(full[0].argmax(dim=0).numpy())
        assert np.array_equal(parser.postprocess(logits, (93, 41)), expected)


def test_fit_size_keeps_aspect_inside_the_box():
    assert fit_size(400, 160, (512, 256)) == (512, 192)  # tall: full height, width by aspect
    assert fit_size(300, 300, (512, 256)) == (256, 256)  # square: limited by the width
    assert fit_size(24, 10, (512, 256)) == (512, 224)
    assert fit_size(1000, 10, (512, 256)) == (512, 32)  # never below one multiple
    for h, w in [(250, 100), (550, 250), (333, 171), (120, 400)]:
        H, W = fit_size(h, w, (512, 256))
        scale = min(512 / h, 256 / w)
        assert H <= 512 and W <= 256 and H % 32 == 0 and W % 32 == 0
        assert abs(H - h * scale) <= 16 and abs(W - w * scale) <= 16  # nearest multiple of 32


def test_input_size_and_describe(tiny_model, parser):
    assert parser.input_size(130, 40) == (64, 32)
    aspect = SegformerParser(str(tiny_model), "cpu", (128, 64))  # the default: aspect kept
    assert aspect.input_size(130, 40) == (128, 32) and aspect.prepare(images([(130, 40)])[0]).shape == (3, 128, 32)
    assert aspect.describe()["keep_aspect"] is True and parser.describe()["keep_aspect"] is False
    assert parser.describe()["parse_size"] == [64, 32] and "precision" not in parser.describe()


def test_bf16_runs_on_cpu_and_fp16_is_for_cuda_only(tiny_model, parser):
    with pytest.raises(BuildError, match="precision fp16 is for CUDA devices; on cpu use bf16 or fp32"):
        SegformerParser(str(tiny_model), "cpu", (64, 32), precision="fp16")
    bf16 = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False, precision="bf16")
    logits, exact = (p.infer([p.prepare(im) for im in images()[:2]]) for p in (bf16, parser))
    assert logits.dtype == torch.float32 and not torch.equal(logits, exact)  # really ran in bf16
    assert (logits - exact).abs().max() <= 0.05 * exact.abs().max()  # bf16 rounding, not another model
    assert bf16.describe()["precision"] == "bf16"
    with pytest.raises(BuildError, match="unknown precision"):
        SegformerParser(str(tiny_model), "cpu", (64, 32), precision="int8")


def test_infer_uses_its_own_thread_count_in_single_threaded_workers(tiny_model):
    model = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False, num_threads=2)
    seen = []

    def worker():
        torch.set_num_threads(1)  # as a pipeline's decode/encode workers do
        model.infer([model.prepare(images()[0])])
        seen.append(torch.get_num_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [2]


def test_fixed_device_batch_splits_and_pads_without_changing_logits(tiny_model):
    """On CUDA every forward pass runs exactly `device_batch` images (builder/parsing/network.py);
    the splitting and zero padding must hand back each image's own logits. Checked on CPU, where
    logits do not depend on the batch: the GPU's batch-shape dependence itself needs a GPU."""
    plain = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False)
    fixed = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False)
    assert plain.device_batch is None  # CPU default
    fixed.device_batch = 3
    tensors = [plain.prepare(image) for image in images(seed=1)]
    for count in (1, 3, 5, 7):
        assert torch.equal(fixed.infer(tensors[:count]), plain.infer(tensors[:count]))


def test_logits_reach_the_host_unchanged_and_part_maps_come_from_the_cpu(tiny_model):
    """`infer_to_host` (what a build's model thread calls) hands back exactly `infer`'s logits on
    the host, and part maps are computed on the CPU whatever the logits' device, so a CUDA build's
    part maps come from the same code as a CPU build's."""
    parser = SegformerParser(str(tiny_model), "cpu", (64, 32), keep_aspect=False)
    assert not parser.cuda_graphs and "cuda_graphs" not in parser.describe()  # CUDA only
    tensors = [parser.prepare(image) for image in images(seed=2)]
    logits = parser.infer(tensors)
    host = parser.infer_to_host(tensors)()
    assert host.device.type == "cpu" and torch.equal(host, logits)
    sizes = [image.shape[:2] for image in images(seed=2)]
    maps = parser.label_maps(logits, sizes)
    assert [m.shape for m in maps] == sizes
    for row, (labels, size) in enumerate(zip(maps, sizes, strict=True)):
        full = torch.nn.functional.interpolate(
            logits[row : row + 1], size=size, mode="bilinear", align_corners=parser.logits_align_corners
        )[0]
        assert np.array_equal(labels, full.argmax(dim=0).numpy())  # the first maximum, as torch's argmax
