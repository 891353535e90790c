"""What every neural part parser shares: sizes, the prepare / infer / postprocess split, precision.

A `NetworkParser` turns images into part maps with a segmentation network. Subclasses (the
SegFormer checkpoints of `transformers` in segmenter.py, SCHP in schp.py) say how the network is
loaded and called and how its input is normalised and resized; everything else is here, so the
build (builder/processing.py) drives any of them the same way.

Each image is scaled to fit inside the `parse_size` box (H, W; a build's default is
builder.config.DEFAULT_PARSE_SIZE) with its own aspect ratio, both sides rounded to a multiple of 32
(`input_size`): a narrow pedestrian crop is neither stretched nor paid for at the full box width.
`keep_aspect=False` stretches every image to exactly `parse_size` instead (one input shape for all,
useful on accelerators that prefer static shapes).

The work is split in three steps so a pipeline can run them where they fit best:

* `prepare(image)`: resize one HxWx3 uint8 RGB image to its input size (uint8 CHW tensor).
  Cheap, thread-safe: decode workers can do it.
* `infer(tensors)`: normalise and run the network on tensors of one input size (one shape per
  call); returns the low-resolution logits on the model's device. The only step that needs the
  network. `infer_to_host(tensors)` does the same and brings the logits to the host without
  waiting for them, so a pipeline's model thread can queue the next batch at once.
* `postprocess(logits, (height, width))`: one image's logits interpolated back to its full size
  once, argmax, label mapping: the HxW uint8 part map, always computed on the CPU (one code path
  whatever the device). Thread-safe: finishing workers can do it.

On CUDA each input shape's forward pass (normalisation included) is captured once as a CUDA graph
and replayed (`CapturedForward`): a replay is one call where an eager ResNet-101 is ~600 kernel
launches, each of which would wait for the GIL behind a build's decoding and encoding threads.

`__call__(paths, images)` chains the three for a batch of any shapes. A part map depends only on
its own image: batches are never padded, images of different input sizes go through separate
forward passes, and every step is per image (the forward pass gives bitwise the same logits for
an image whatever else is in its batch; tests check it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from builder.devices import DEVICE_LANES, resolve_device
from builder.errors import BuildError
from builder.parsing.label_mapping import PartMapper

SIZE_MULTIPLE = 32  # sides that divide evenly through stride-32 (SegFormer) and stride-16 (SCHP) networks
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# On CUDA (see NetworkParser.__init__): images in every forward pass, whatever --batch-size; forward
# passes in flight at once (lanes), each lane on its own stream replaying its own captured graph.
# SCHP on an H100, 512x256 box, through the parser: 218 img/s with 1 lane, 547 with 4, 727 with 8
# (0.37 GiB), against 977 for 16-image passes, which are not batch-independent.
DEVICE_BATCH = 1  # lanes: builder.devices.DEVICE_LANES, set per shard maker
log = logging.getLogger(__name__)


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 natively here (AVX512-BF16 or AMX); elsewhere it is emulated, slower than fp32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def fit_size(height: int, width: int, box: tuple[int, int], multiple: int = SIZE_MULTIPLE) -> tuple[int, int]:
    """The largest size of the image's aspect ratio inside `box` (H, W), each side rounded to the
    nearest multiple of `multiple` (at least one multiple, at most the box's side)."""
    scale = min(box[0] / height, box[1] / width)

    def side(length: float, limit: int) -> int:
        return int(min(max(multiple, multiple * round(length * scale / multiple)), max(limit, multiple)))

    return side(height, box[0]), side(width, box[1])


class NetworkParser:
    """Base of the network parsers. A subclass loads its network in `__init__` (after calling
    `super().__init__`), then sets `self.model`, `self.mapper` (its labels -> parts) and the
    normalisation (`set_normalisation`), and implements `forward` and `describe_model`."""

    # How the input is resized, and how logits are interpolated back to the image: as the
    # network's own reference code does it (class attributes of each subclass).
    resize_antialias: bool = True
    resize_align_corners: bool = False
    logits_align_corners: bool = False

    model: torch.nn.Module
    mapper: PartMapper

    def __init__(
        self,
        device: str,
        parse_size: tuple[int, int],
        *,
        keep_aspect: bool = True,
        precision: str = "fp32",
        num_threads: int | None = None,
        alias: str | None = None,
    ):
        """`alias`: the --model alias the checkpoint was named by (recorded in `describe`).
        `precision` "bf16" (CUDA or CPU) / "fp16" (CUDA) runs the forward pass under autocast:
        opt in, as part maps can differ from fp32 ones at part borders. `num_threads`: torch
        threads of the thread that calls `infer` (default: torch's count when the parser is made),
        set there on first use, so pipelines may run their own worker threads single-threaded."""
        if precision not in PRECISIONS:
            raise BuildError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.device = resolve_device(device)
        if precision == "fp16" and self.device.type != "cuda":
            raise BuildError(f"precision fp16 is for CUDA devices; on {self.device} use bf16 or fp32")
        if precision == "bf16" and self.device.type == "cpu" and not cpu_has_native_bf16():
            log.warning(
                "this CPU has no native bf16 (AVX512-BF16 or AMX): --precision bf16 runs emulated, slower than fp32"
            )
        sides = tuple(int(v) for v in parse_size)
        if len(sides) != 2 or min(sides) < 1:
            raise BuildError(f"--parse-size must be two positive sides HxW, got {'x'.join(map(str, parse_size))}")
        self.parse_size: tuple[int, int] = (sides[0], sides[1])
        if keep_aspect and any(side % SIZE_MULTIPLE for side in self.parse_size):
            # fit_size() rounds every input side to a multiple: a box that is not one would run at
            # another size than the one the report records. Refused rather than silently adjusted.
            height, width = self.parse_size
            fit = "x".join(str(max(SIZE_MULTIPLE, s // SIZE_MULTIPLE * SIZE_MULTIPLE)) for s in self.parse_size)
            raise BuildError(
                f"--parse-size {height}x{width}: each side must be a multiple of {SIZE_MULTIPLE} "
                f"(inputs are fitted into the box in multiples of {SIZE_MULTIPLE}); use e.g. {fit}, "
                f"or --no-keep-aspect to stretch every crop to exactly {height}x{width}"
            )
        self.keep_aspect = keep_aspect
        self.precision = precision
        self.num_threads = num_threads or torch.get_num_threads()
        self.alias = alias
        self._bgr = False
        # On CUDA an image's logits must not depend on the other images of its forward pass, or a
        # build would differ with --batch-size, and a resumed build, which groups batches
        # differently, would not be byte-identical. cuDNN picks kernels by batch shape (an H100
        # build gave other shards at --batch-size 5 than at 32), and even at one fixed batch shape
        # an image's logits can depend on what else is in the pass (with 16-image passes, 1 image
        # of 10 differed alone, i.e. beside zero padding, from among other images, and 2 of 5
        # shards differed). So every forward pass runs DEVICE_BATCH images (one: the same kernels on
        # the same input for every image, checked bit for bit on an H100) with cuDNN's deterministic
        # algorithms, and DEVICE_LANES passes run at once on separate streams, which fills the GPU
        # the way a batch would without sharing any arithmetic between images. On CPU results are
        # batch-independent, and batches run whole.
        cuda = self.device.type == "cuda"
        self.device_batch = DEVICE_BATCH if cuda else None
        self.lanes = DEVICE_LANES if cuda else 1
        if cuda:
            torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
        self.cuda_graphs = cuda  # replay captured forward passes (CapturedForward)
        self._captured: dict[tuple[int, ...], CapturedForward] = {}  # (lane, *input shape) -> graph
        self._lane_state: list[tuple[torch.cuda.Stream, tuple]] = []  # (stream, graph memory pool) per lane

    def set_normalisation(
        self, scale: float, mean: Sequence[float], std: Sequence[float], *, bgr: bool = False
    ) -> None:
        """Network input = (pixel * scale - mean) / std per channel, channels in RGB order or, with
        `bgr`, in BGR order (mean and std then given in that order too)."""
        mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
        # one multiply-add per channel
        self._mul = (scale / std_t).view(1, 3, 1, 1).to(self.device)
        self._add = (-mean_t / std_t).view(1, 3, 1, 1).to(self.device)
        self._bgr = bgr

    # -- what a subclass provides -------------------------------------------------------------------
    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Logits (N x labels x h x w) of a normalised channels-last batch."""
        raise NotImplementedError

    def describe_model(self) -> dict:
        """The network and checkpoint, for the build report and the card."""
        raise NotImplementedError

    # -- sizes ---------------------------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """The model input size (H, W) of an image of this size: a function of the size alone,
        so it can also key batches (images of one input size share a forward pass)."""
        if not self.keep_aspect:
            return self.parse_size
        return fit_size(height, width, self.parse_size)

    # -- the three steps -----------------------------------------------------------------------
    def prepare(self, image: np.ndarray) -> torch.Tensor:
        """One HxWx3 uint8 RGB image resized to its input size: a 3xHxW uint8 tensor (CPU)."""
        size = self.input_size(*image.shape[:2])
        pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]  # NHWC memory
        if tuple(pixels.shape[2:]) != size:
            pixels = F.interpolate(
                pixels,
                size=size,
                mode="bilinear",
                align_corners=self.resize_align_corners,
                antialias=self.resize_antialias,
            )
        return pixels[0]

    @torch.inference_mode()
    def infer(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits (N x labels x h x w, float32, on the model's device) of prepared images that
        share one input size."""
        if torch.get_num_threads() != self.num_threads:
            torch.set_num_threads(self.num_threads)  # per calling thread; once per thread
        shape = tensors[0].shape
        if any(t.shape != shape for t in tensors):
            raise ValueError("infer() takes images of one input size; group them by input_size()")
        # uint8 crosses to the device (a quarter of float32's bytes), from pinned memory on CUDA so
        # the copy does not wait for the forward passes already queued; conversion, channel order
        # and normalisation happen there.
        count, n = len(tensors), self.device_batch or len(tensors)
        tensors = list(tensors) + [torch.zeros_like(tensors[0])] * (-count % n)  # the last pass padded
        cuda = self.device.type == "cuda"
        batch = torch.empty((len(tensors), *shape), dtype=torch.uint8, pin_memory=cuda)
        torch.stack(tensors, out=batch)
        batch = batch.to(self.device, non_blocking=cuda)
        chunks = [batch[i : i + n] for i in range(0, len(batch), n)]
        if not cuda:
            outputs = [self._normalised_forward(chunk) for chunk in chunks]
            return (outputs[0] if len(outputs) == 1 else torch.cat(outputs))[:count]  # CPU: one chunk, no copy
        with torch.cuda.device(self.device):
            return self._run_lanes(chunks)[:count]

    def _run_lanes(self, chunks: list[torch.Tensor]) -> torch.Tensor:
        """Chunk i's forward pass on lane i % lanes; the lanes start after, and the current stream
        continues after, all of them (so memory handed between streams is never reused early)."""
        while len(self._lane_state) < self.lanes:
            self._lane_state.append((torch.cuda.Stream(self.device), torch.cuda.graph_pool_handle()))
        current = torch.cuda.current_stream(self.device)
        used = self._lane_state[: min(self.lanes, len(chunks))]
        for stream, _ in used:
            stream.wait_stream(current)
        outputs = []
        for i, chunk in enumerate(chunks):
            lane = i % len(used)
            stream, pool = used[lane]
            with torch.cuda.stream(stream):
                outputs.append(self._forward_on_lane(lane, chunk, pool))
        for stream, _ in used:
            current.wait_stream(stream)
        return torch.cat(outputs)

    def _forward_on_lane(self, lane: int, chunk: torch.Tensor, pool: tuple) -> torch.Tensor:
        """One forward pass on the current (lane) stream: its captured graph, captured on first use."""
        if not self.cuda_graphs:
            return self._normalised_forward(chunk)
        key = (lane, *chunk.shape)
        captured = self._captured.get(key)
        if captured is None:
            try:
                captured = CapturedForward(self._normalised_forward, chunk, pool)
            except RuntimeError as exc:  # a network with an op that cannot be captured: run it eagerly
                log.warning(
                    "cannot capture %s as a CUDA graph (%s); running its forward passes eagerly",
                    type(self.model).__name__,
                    str(exc).splitlines()[0] if str(exc) else exc,
                )
                self.cuda_graphs = False
                return self._normalised_forward(chunk)
            self._captured[key] = captured
        return captured(chunk)

    def _normalised_forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Float32 logits of a uint8 N x 3 x H x W batch on the device: channel order,
        normalisation, the network under the chosen precision."""
        if self._bgr:
            batch = batch.flip(1)
        batch = batch.to(torch.float32).contiguous(memory_format=torch.channels_last)
        batch.mul_(self._mul).add_(self._add)
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            logits = self.forward(batch)
        else:  # no cast cache: cached weight copies would live in a CUDA graph's pool past its capture
            with torch.autocast(self.device.type, dtype=dtype, cache_enabled=False):
                logits = self.forward(batch)
        return logits.float()

    @torch.inference_mode()
    def infer_to_host(self, tensors: Sequence[torch.Tensor]) -> Callable[[], torch.Tensor]:
        """`infer`, with the logits brought to the host: returns a function that waits for them
        and returns them (N x labels x h x w, float32, CPU). On CUDA the copy is queued behind the
        forward pass into pinned memory and this returns at once, so the calling thread can queue
        the next batch while the device works; whoever calls the function waits (it needs no CUDA
        work of its own, only the copy's event)."""
        logits = self.infer(tensors)
        if logits.device.type == "cpu":
            return lambda: logits
        host = torch.empty(logits.shape, dtype=logits.dtype, pin_memory=True)
        host.copy_(logits, non_blocking=True)
        copied = torch.cuda.Event()
        copied.record(torch.cuda.current_stream(logits.device))

        def wait() -> torch.Tensor:
            copied.synchronize()
            return host

        return wait

    def label_maps(self, logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[np.ndarray]:
        """Each image's logits (a batch, labels x h x w each; on any device, brought to the CPU)
        interpolated to its full size once, then the argmax over labels: the model's label maps.
        The argmax is numpy's: ~6x faster than torch's for 18 labels, with the same rule (the
        first maximum), so the same labels."""
        logits = logits.cpu()
        with torch.inference_mode():
            full = [
                F.interpolate(
                    logits[row : row + 1], size=tuple(size), mode="bilinear", align_corners=self.logits_align_corners
                )[0]
                for row, size in enumerate(sizes)
            ]
        return [plane.numpy().argmax(axis=0) for plane in full]

    def postprocess(self, logits: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """One image's logits (labels x h x w) -> its HxW uint8 part map."""
        return self.mapper(self.label_maps(logits[None], [size])[0])

    def __call__(self, paths: Sequence[str], images: Sequence[np.ndarray]) -> list[np.ndarray]:
        prepared = [self.prepare(image) for image in images]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, tensor in enumerate(prepared):
            groups.setdefault(tuple(tensor.shape), []).append(i)
        maps: list[np.ndarray | None] = [None] * len(images)
        for indices in groups.values():
            logits = self.infer_to_host([prepared[i] for i in indices])()
            for row, i in enumerate(indices):
                maps[i] = self.postprocess(logits[row], images[i].shape[:2])
        return maps  # type: ignore[return-value]

    def check_present(self, source_paths: Sequence[str]) -> None:
        """A model parses any image: nothing to check up front."""

    def describe(self) -> dict:
        info = {
            "kind": "model",
            **({"alias": self.alias} if self.alias else {}),
            **self.describe_model(),
            "parse_size": list(self.parse_size),
            "device": str(self.device),
        }
        info["keep_aspect"] = self.keep_aspect  # True: parse_size is the box each image is fitted into
        if self.precision != "fp32":
            info["precision"] = self.precision
        if self.device_batch is not None:
            info["device_batch"] = self.device_batch
            info["device_lanes"] = self.lanes
        if self.cuda_graphs:
            info["cuda_graphs"] = True
        return info


class CapturedForward:
    """One input shape's forward pass captured as a CUDA graph, replayed for every batch of that shape.

    Replaying runs the kernels that eager execution chose for the shape (cuDNN's deterministic
    algorithms; on an H100 the replays gave the eager logits bit for bit) with one host call. A
    lane's graphs of all shapes share one memory pool, so its memory is that of its largest shape,
    not their sum: safe because a lane's replays run one at a time on its stream and each replay's
    output is copied out (`clone`, queued right behind it) before the next can reuse the memory.
    """

    def __init__(
        self, run: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor, pool: Any
    ) -> None:  # pool: a torch.cuda.graph_pool_handle(), an opaque handle
        self.input = example.clone()  # outside the graph's pool: never reused by another capture
        lane = torch.cuda.current_stream(example.device)
        side = torch.cuda.Stream(example.device)
        side.wait_stream(lane)
        with torch.cuda.stream(side):  # warm-up off the capture: cuDNN handles, workspaces, lazy inits
            for _ in range(2):
                run(self.input)
        lane.wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        # thread_local: the build's other threads may call CUDA (waiting on copy events) meanwhile
        with torch.cuda.graph(self.graph, pool=pool, capture_error_mode="thread_local"):
            self.output = run(self.input)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        self.input.copy_(batch)
        self.graph.replay()
        return self.output.clone()
