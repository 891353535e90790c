"""SCHP (Self-Correction for Human Parsing, Li et al.) in plain PyTorch, and its part parser.

The network is the one of the official `networks/AugmentCE2P.py`
(github.com/GoGoDuck912/Self-Correction-Human-Parsing): a ResNet-101 with a deep stem (three 3x3
convolutions), a dilated last stage (output stride 16), PSP context encoding, an edge branch, a
decoder at stride 4 and a fusion branch, whose logits are the parse. The original normalises with
InPlaceABNSync, a compiled extension; here each one is `ABN`: batch norm with the extension's
arithmetic (its scale is |weight| + eps, not weight) followed by a leaky ReLU of slope 0.01 (the
extension's default), or by nothing where the original builds it with activation "none" (every
norm of the ResNet backbone, followed there by a plain ReLU, and the shortcut norms).
Parameter and buffer names are the original's, so the official checkpoints load with strict key
checks: Pascal-Person-Part (7 labels), LIP (20) and ATR (18).

Inference as SCHP's `simple_extractor.py` does it: BGR channel order, pixels / 255 normalised with
mean (0.406, 0.456, 0.485) and std (0.225, 0.224, 0.229) (BGR order), bilinear resize with the
corners aligned and no antialiasing (its cv2.warpAffine), and logits interpolated back with
align_corners=True. Where SCHP letterboxes each crop into a square, the parser fits it into the
`--parse-size` box with its own aspect ratio (network.py), so no pixels are spent on padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from builder.errors import BuildError
from builder.parsing.checkpoints import CheckpointSource, HubFile, read_state_dict, resolve_weights
from builder.parsing.label_mapping import PartMapper
from builder.parsing.network import NetworkParser
from occluded_ccreid.layout import sha256_file

# Label names of the official checkpoints, in their order (simple_extractor.py), by label count.
LABEL_SETS: dict[int, tuple[str, list[str]]] = {
    7: ("Pascal-Person-Part", ["Background", "Head", "Torso", "Upper Arms", "Lower Arms", "Upper Legs", "Lower Legs"]),
    20: (
        "LIP",
        [
            "Background",
            "Hat",
            "Hair",
            "Glove",
            "Sunglasses",
            "Upper-clothes",
            "Dress",
            "Coat",
            "Socks",
            "Pants",
            "Jumpsuits",
            "Scarf",
            "Skirt",
            "Face",
            "Left-arm",
            "Right-arm",
            "Left-leg",
            "Right-leg",
            "Left-shoe",
            "Right-shoe",
        ],
    ),
    18: (
        "ATR",
        [
            "Background",
            "Hat",
            "Hair",
            "Sunglasses",
            "Upper-clothes",
            "Skirt",
            "Pants",
            "Dress",
            "Belt",
            "Left-shoe",
            "Right-shoe",
            "Face",
            "Left-leg",
            "Right-leg",
            "Left-arm",
            "Right-arm",
            "Bag",
            "Scarf",
        ],
    ),
}
BGR_MEAN = (0.406, 0.456, 0.485)
BGR_STD = (0.225, 0.224, 0.229)
ARCHITECTURE = "SCHP (AugmentCE2P: ResNet-101, PSP, edge and fusion branches)"


# -- the network ---------------------------------------------------------------------------------
class ABN(nn.Module):
    """InPlaceABN's batch norm (scale |weight| + eps) with an optional leaky ReLU. Holds exactly the
    original's four tensors (no `num_batches_tracked`)."""

    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(
        self, channels: int, activation: bool = True, slope: float = 0.01, eps: float = 1e-5, momentum: float = 0.1
    ):
        super().__init__()
        self.activation, self.slope, self.eps, self.momentum = activation, slope, eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight.abs() + self.eps,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
        )
        return F.leaky_relu(x, self.slope) if self.activation else x


def _conv(cin: int, cout: int, kernel: int = 1, stride: int = 1, dilation: int = 1, bias: bool = False) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=dilation * (kernel // 2), dilation=dilation, bias=bias)


def _conv_abn(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(_conv(cin, cout, kernel), ABN(cout))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int = 1, dilation: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1, self.bn1 = _conv(cin, planes), ABN(planes, activation=False)
        self.conv2, self.bn2 = _conv(planes, planes, 3, stride, dilation), ABN(planes, activation=False)
        self.conv3, self.bn3 = _conv(planes, planes * 4), ABN(planes * 4, activation=False)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


class PSPModule(nn.Module):
    def __init__(self, features: int = 2048, out: int = 512, sizes: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.stages = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(size), _conv(features, out), ABN(out)) for size in sizes
        )
        self.bottleneck = _conv_abn(features + len(sizes) * out, out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[2:]
        priors = [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=True) for stage in self.stages]
        return self.bottleneck(torch.cat([*priors, x], 1))


class EdgeModule(nn.Module):
    """The edge branch. Only its features feed the fusion branch; its edge logits (conv4, conv5)
    are a training target, kept for the checkpoint's keys but not computed."""

    def __init__(self, features: tuple[int, ...] = (256, 512, 1024), mid: int = 256, out: int = 2):
        super().__init__()
        self.conv1, self.conv2, self.conv3 = (_conv_abn(f, mid) for f in features)
        self.conv4 = _conv(mid, out, 3, bias=True)
        self.conv5 = _conv(out * 3, out, bias=True)

    def forward(self, x2: torch.Tensor, x3: torch.Tensor, x4: torch.Tensor) -> torch.Tensor:
        size = x2.shape[2:]
        return torch.cat(
            [self.conv1(x2)]
            + [
                F.interpolate(conv(x), size=size, mode="bilinear", align_corners=True)
                for conv, x in ((self.conv2, x3), (self.conv3, x4))
            ],
            1,
        )


class DecoderModule(nn.Module):
    """The parsing decoder. Its own logits (conv4) are a training target: kept, not computed."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = _conv_abn(512, 256)
        self.conv2 = _conv_abn(256, 48)
        self.conv3 = nn.Sequential(_conv(304, 256), ABN(256), _conv(256, 256), ABN(256))
        self.conv4 = _conv(256, num_classes, bias=True)

    def forward(self, context: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
        top = F.interpolate(self.conv1(context), size=low.shape[2:], mode="bilinear", align_corners=True)
        return self.conv3(torch.cat([top, self.conv2(low)], 1))


class SCHP(nn.Module):
    """forward(N x 3 x H x W normalised BGR) -> fusion logits N x labels x ceil(H/4) x ceil(W/4)."""

    def __init__(self, num_classes: int, layers: tuple[int, ...] = (3, 4, 23, 3)):
        super().__init__()
        self.num_classes = num_classes
        self.conv1, self.bn1 = _conv(3, 64, 3, stride=2), ABN(64, activation=False)
        self.conv2, self.bn2 = _conv(64, 64, 3), ABN(64, activation=False)
        self.conv3, self.bn3 = _conv(64, 128, 3), ABN(128, activation=False)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self._channels = 128
        self.layer1 = self._layer(64, layers[0])
        self.layer2 = self._layer(128, layers[1], stride=2)
        self.layer3 = self._layer(256, layers[2], stride=2)
        self.layer4 = self._layer(512, layers[3], dilation=2)
        self.context_encoding = PSPModule()
        self.edge = EdgeModule()
        self.decoder = DecoderModule(num_classes)
        # "fushion" is the original's spelling, kept for the checkpoint keys; index 2 is its dropout
        self.fushion = nn.Sequential(_conv(1024, 256), ABN(256), nn.Dropout2d(0.1), _conv(256, num_classes, bias=True))

    def _layer(self, planes: int, blocks: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
        downsample = None
        if stride != 1 or self._channels != planes * 4:
            downsample = nn.Sequential(
                _conv(self._channels, planes * 4, stride=stride), ABN(planes * 4, activation=False)
            )
        layers = [Bottleneck(self._channels, planes, stride, dilation, downsample)]
        self._channels = planes * 4
        layers += [Bottleneck(self._channels, planes, dilation=dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x2 = self.layer1(self.maxpool(x))
        x3 = self.layer2(x2)
        x4 = self.layer3(x3)
        context = self.context_encoding(self.layer4(x4))
        parsing_features = self.decoder(context, x2)
        return self.fushion(torch.cat([parsing_features, self.edge(x2, x3, x4)], 1))


# -- loading ---------------------------------------------------------------------------------------
def _key_report(kind: str, keys: list[str]) -> str:
    shown = ", ".join(sorted(keys)[:4])
    return f"{len(keys)} {kind} (e.g. {shown}{', ...' if len(keys) > 4 else ''})"


def schp_from_state_dict(state: dict[str, torch.Tensor], origin: str = "checkpoint") -> SCHP:
    """An eval-mode SCHP holding `state` (official key names, `module.` prefix already removed);
    BuildError when the keys or shapes are not SCHP's."""
    head = state.get("fushion.3.weight")
    num_classes = int(head.shape[0]) if isinstance(head, torch.Tensor) and head.dim() == 4 else 7
    with torch.device("meta"):  # no random initialisation of 67M parameters that are replaced at once
        model = SCHP(num_classes)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = [_key_report("missing keys", missing)] if missing else []
        parts += [_key_report("unexpected keys", unexpected)] if unexpected else []
        raise BuildError(
            f"{origin} is not an SCHP (AugmentCE2P ResNet-101) checkpoint: {'; '.join(parts)}. "
            "Pass an official SCHP .pth (exp-schp-*.pth) or a model alias such as schp-pascal."
        )
    wrong = [
        f"{k} {tuple(state[k].shape)} (SCHP: {tuple(v.shape)})"
        for k, v in expected.items()
        if state[k].shape != v.shape
    ]
    if wrong:
        raise BuildError(f"{origin} has SCHP's keys but {len(wrong)} tensors of other shapes, e.g. {wrong[0]}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    return model.eval()


def load_schp(checkpoint: CheckpointSource) -> SCHP:
    """SCHP from a `.pth` / `.safetensors` file (a state dict, optionally under `state_dict`, with or
    without the `module.` prefix of the official files), a folder holding one, or a Hub repo id
    (`owner/name`, or `owner/name/path/in/repo.pth` when it holds several); from the Hub only the
    weights file is downloaded, no code is run. Returns the network in eval mode on the CPU."""
    path = resolve_weights(checkpoint)
    return schp_from_state_dict(read_state_dict(path), str(path))


def label_set(num_classes: int, origin: str = "the SCHP checkpoint") -> tuple[str, list[str]]:
    """(dataset name, label names) of an SCHP checkpoint with this many labels."""
    if num_classes not in LABEL_SETS:
        raise BuildError(
            f"{origin} has {num_classes} labels; known label sets: "
            + ", ".join(f"{n} ({name})" for n, (name, _) in sorted(LABEL_SETS.items()))
        )
    return LABEL_SETS[num_classes]


# -- the part parser -------------------------------------------------------------------------------
class SchpParser(NetworkParser):
    resize_antialias = False  # SCHP's cv2.warpAffine: bilinear, corners aligned
    resize_align_corners = True
    logits_align_corners = True  # SCHP's nn.Upsample(align_corners=True) and warp back

    def __init__(
        self,
        checkpoint: CheckpointSource,
        device: str,
        parse_size: tuple[int, int],
        *,
        keep_aspect: bool = True,
        precision: str = "fp32",
        num_threads: int | None = None,
        alias: str | None = None,
    ):
        super().__init__(
            device, parse_size, keep_aspect=keep_aspect, precision=precision, num_threads=num_threads, alias=alias
        )
        path = resolve_weights(checkpoint)
        model = schp_from_state_dict(read_state_dict(path), str(path))
        self.label_set, names = label_set(model.num_classes, str(path))
        self.labels: dict[int | str, str] = dict(enumerate(names))
        self.mapper = PartMapper(self.labels)
        # where the weights come from, for the card: the pinned Hub file, or the local path
        if isinstance(checkpoint, HubFile):
            self.checkpoint = checkpoint.describe()
            self.model_id = f"{checkpoint.repo_id}/{checkpoint.filename}"
        else:
            self.checkpoint = {"path": str(path), "sha256": sha256_file(path)}
            self.model_id = str(checkpoint)
        # Module.to takes memory_format at runtime; torch's type stubs leave it out
        self.model = model.to(self.device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.set_normalisation(1 / 255, BGR_MEAN, BGR_STD, bgr=True)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def describe_model(self) -> dict:
        return {
            "architecture": ARCHITECTURE,
            "model": self.model_id,
            "checkpoint": self.checkpoint,
            "label_set": self.label_set,
            "labels": self.labels,
        }
