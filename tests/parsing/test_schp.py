"""SCHP: the network against a reference written here from the published architecture, checkpoint
loading (official layout, prefixes, formats, wrong files), aliases, and `builder build` end to end."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from datasets import load_dataset
from synthetic import make_prcc_tree

from builder.cli import main
from builder.errors import BuildError
from builder.parsing.checkpoints import HubFile
from builder.parsing.label_mapping import PartMapper
from builder.parsing.models import DEFAULT_MODEL, MODELS, make_model_parser, model_kind
from builder.parsing.network import NetworkParser
from builder.parsing.schp import SCHP, SchpParser, label_set, load_schp, schp_from_state_dict

EPS = 1e-5  # InPlaceABN's eps


# -- an independent reference: AugmentCE2P's forward written with functional ops over the state dict
def _abn(x, p, name, act=True):
    """InPlaceABN(Sync) in eval mode: the CUDA/CPU kernels scale by |weight| + eps, then leaky ReLU 0.01
    (activation 'none': no activation)."""
    shape = (1, -1, 1, 1)
    y = (x - p[f"{name}.running_mean"].view(shape)) / torch.sqrt(p[f"{name}.running_var"].view(shape) + EPS)
    y = y * (p[f"{name}.weight"].abs() + EPS).view(shape) + p[f"{name}.bias"].view(shape)
    return torch.where(y >= 0, y, 0.01 * y) if act else y


def _conv(x, p, name, stride=1, padding=0, dilation=1):
    return F.conv2d(x, p[f"{name}.weight"], p.get(f"{name}.bias"), stride, padding, dilation)


def _up(x, like):
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=True)


def reference_forward(p, x):
    relu = torch.relu
    x = relu(_abn(_conv(x, p, "conv1", 2, 1), p, "bn1", act=False))
    x = relu(_abn(_conv(x, p, "conv2", 1, 1), p, "bn2", act=False))
    x = relu(_abn(_conv(x, p, "conv3", 1, 1), p, "bn3", act=False))
    x = F.max_pool2d(x, 3, 2, 1)
    features = []
    layers = zip((3, 4, 23, 3), (1, 2, 2, 1), (1, 1, 1, 2), strict=True)
    for layer, (blocks, stride, dilation) in enumerate(layers, start=1):
        for b in range(blocks):
            n = f"layer{layer}.{b}"
            out = relu(_abn(_conv(x, p, f"{n}.conv1"), p, f"{n}.bn1", act=False))
            out = relu(
                _abn(_conv(out, p, f"{n}.conv2", stride if b == 0 else 1, dilation, dilation), p, f"{n}.bn2", act=False)
            )
            out = _abn(_conv(out, p, f"{n}.conv3"), p, f"{n}.bn3", act=False)
            if b == 0:
                x = _abn(_conv(x, p, f"{n}.downsample.0", stride), p, f"{n}.downsample.1", act=False)
            x = relu(out + x)
        features.append(x)
    x2, x3, x4, x5 = features
    priors = [
        _up(
            _abn(
                _conv(F.adaptive_avg_pool2d(x5, s), p, f"context_encoding.stages.{i}.1"),
                p,
                f"context_encoding.stages.{i}.2",
            ),
            x5,
        )
        for i, s in enumerate((1, 2, 3, 6))
    ]
    context = _abn(
        _conv(torch.cat(priors + [x5], 1), p, "context_encoding.bottleneck.0", 1, 1), p, "context_encoding.bottleneck.1"
    )
    top = _up(_abn(_conv(context, p, "decoder.conv1.0"), p, "decoder.conv1.1"), x2)
    low = _abn(_conv(x2, p, "decoder.conv2.0"), p, "decoder.conv2.1")
    d = _abn(_conv(torch.cat([top, low], 1), p, "decoder.conv3.0"), p, "decoder.conv3.1")
    d = _abn(_conv(d, p, "decoder.conv3.2"), p, "decoder.conv3.3")
    edges = [_abn(_conv(f, p, f"edge.conv{i}.0"), p, f"edge.conv{i}.1") for i, f in ((1, x2), (2, x3), (3, x4))]
    edge_features = torch.cat([edges[0], _up(edges[1], x2), _up(edges[2], x2)], 1)
    fused = _abn(_conv(torch.cat([d, edge_features], 1), p, "fushion.0"), p, "fushion.1")
    return _conv(fused, p, "fushion.3")  # fushion.2 is a dropout: identity in eval


def random_state(num_classes=7, seed=0):
    """Random weights under the official key names, with non-trivial batch-norm statistics and
    negative norm weights (which InPlaceABN's |weight| treats unlike a plain BatchNorm). The
    statistics are those of a random batch, then perturbed: statistics unrelated to the
    activations would wash out every spatial difference over 100 layers, leaving logits that
    differ from a constant by too little for the comparison to mean anything."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    with torch.device("meta"):
        shapes = SCHP(num_classes).state_dict()
    for key, value in shapes.items():
        value = torch.zeros(value.shape) if "running" not in key else torch.ones(value.shape)
        if value.dim() == 4:  # convolutions, He-initialised
            state[key] = torch.randn(value.shape, generator=g).mul_((2 / value[0].numel()) ** 0.5)
        elif ".bn3." in key and key.endswith("weight"):  # keep the 33 residual additions bounded
            state[key] = (torch.rand(value.shape, generator=g) - 0.5) * 0.6
        elif key.endswith("weight"):
            state[key] = (torch.rand(value.shape, generator=g) - 0.3) * 1.5
        elif key.endswith("bias"):
            state[key] = torch.randn(value.shape, generator=g) * 0.1
        else:
            state[key] = value
    model = SCHP(num_classes)
    model.load_state_dict(state)
    for module in model.modules():
        if hasattr(module, "momentum"):
            module.momentum = 1.0  # running statistics := this batch's
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 64, 32, generator=g))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for key, value in state.items():
        if key.endswith("running_mean"):
            value += torch.randn(value.shape, generator=g) * 0.1 * state[key.replace("mean", "var")].sqrt()
        elif key.endswith("running_var"):
            value *= torch.rand(value.shape, generator=g) * 0.7 + 0.7
    return state


@pytest.fixture(scope="module")
def state():
    return random_state()


@pytest.fixture(scope="module")
def official_pth(state, tmp_path_factory):
    """A checkpoint in the official files' layout: {'state_dict': {'module.<key>': tensor}}."""
    path = tmp_path_factory.mktemp("schp") / "exp-schp-random-pascal-person-part.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    return path


@pytest.fixture(scope="module")
def reference_logits(state):
    """Input and reference logits, in float64: rounding then cannot hide a wrong architecture, and
    cannot fail a right one."""
    x = torch.randn(2, 3, 64, 32, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.inference_mode():
        return x, reference_forward({k: v.double() for k, v in state.items()}, x)


def test_load_schp_matches_the_reference_forward(official_pth, reference_logits):
    x, expected = reference_logits
    model = load_schp(official_pth)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    with torch.inference_mode():
        got32 = model(x.float())
        got = model.double()(x)
    assert got.shape == (2, 7, 16, 8)  # a quarter of 64x32, as the original's decoder resolution
    assert expected.std(dim=(2, 3)).mean() > 0.3  # logits that vary over the image: the comparison means something
    assert (got - expected).abs().max() < 1e-4
    assert (got32 - expected).abs().max() < 1e-4 * expected.abs().max()  # float32, as builds run it
    with torch.inference_mode():  # odd sizes: a quarter rounded up
        assert model(x[:, :, :61, :29]).shape == (2, 7, 16, 8)


def test_other_checkpoint_layouts_load(state, reference_logits, tmp_path):
    """No `state_dict` wrapper and no `module.` prefix, safetensors, in a folder, with the
    `num_batches_tracked` counters of a BatchNorm2d port (ignored; strictness kept for the rest)."""
    from safetensors.torch import save_file

    x, expected = reference_logits
    folder = tmp_path / "folder"
    folder.mkdir()
    tracked = {
        f"{k.rsplit('.', 1)[0]}.num_batches_tracked": torch.tensor(5) for k in state if k.endswith("running_var")
    }
    save_file({**{k: v.contiguous() for k, v in state.items()}, **tracked}, folder / "model.safetensors")
    with torch.inference_mode():
        assert (load_schp(folder).double()(x) - expected).abs().max() < 1e-4


def test_a_wrong_checkpoint_names_its_keys(state, tmp_path):
    resnet = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7), "fc.weight": torch.zeros(1000, 2048)}, resnet)
    with pytest.raises(BuildError) as error:
        load_schp(resnet)
    message = str(error.value)
    assert "is not an SCHP" in message and str(resnet) in message
    assert f"{len(state) - 1} missing keys (e.g. bn1.bias, bn1.running_mean, " in message
    assert "1 unexpected keys (e.g. fc.weight)" in message
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(BuildError, match="garbage.pth is not a PyTorch checkpoint"):
        load_schp(garbage)
    with pytest.raises(BuildError, match="other shapes, e.g. conv1.weight"):
        schp_from_state_dict({**state, "conv1.weight": torch.zeros(64, 3, 5, 5)})
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BuildError, match="holds 0 weights files"):
        load_schp(empty)
    with pytest.raises(BuildError, match="does not exist"):
        load_schp(tmp_path / "nowhere.pth")


def test_label_sets_follow_the_number_of_labels():
    assert label_set(7) == (
        "Pascal-Person-Part",
        ["Background", "Head", "Torso", "Upper Arms", "Lower Arms", "Upper Legs", "Lower Legs"],
    )
    for classes, name, label in ((20, "LIP", "Left-shoe"), (18, "ATR", "Bag")):
        got_name, labels = label_set(classes)
        assert got_name == name and len(labels) == classes and label in labels
        PartMapper(dict(enumerate(labels)))  # every label maps onto the parts
    with pytest.raises(BuildError, match="has 5 labels; known label sets: 7 .Pascal-Person-Part."):
        label_set(5)


def test_parser_runs_schp_as_schp_does(official_pth, state):
    """BGR, SCHP's mean/std on pixels/255, corner-aligned resize without antialiasing, logits back
    to the crop with align_corners=True: checked against those operations written out here."""
    parser = SchpParser(official_pth, "cpu", (64, 32))
    assert isinstance(parser, NetworkParser)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(90, 40, 3), dtype=np.uint8)
    prepared = parser.prepare(image)  # SCHP's warpAffine: bilinear, corners aligned, no antialiasing
    rgb = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    resized = F.interpolate(rgb, size=(64, 32), mode="bilinear", align_corners=True)[0]
    assert prepared.dtype == torch.uint8 and (prepared.float() - resized).abs().max() <= 1  # uint8 rounding
    bgr = prepared.float()[[2, 1, 0]][None] / 255
    mean, std = torch.tensor([0.406, 0.456, 0.485]), torch.tensor([0.225, 0.224, 0.229])
    with torch.inference_mode():
        expected = reference_forward(state, (bgr - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1))
    logits = parser.infer([prepared])
    assert (logits - expected).abs().max() < 1e-4 * expected.abs().max()  # float32 rounding
    full = F.interpolate(logits, size=(90, 40), mode="bilinear", align_corners=True)[0].argmax(0).numpy()
    got = parser(["a.jpg"], [image])[0]
    assert got.shape == (90, 40) and got.dtype == np.uint8
    assert np.array_equal(got, full.astype(np.uint8))  # Pascal labels are the parts themselves
    info = parser.describe()
    assert info["architecture"].startswith("SCHP") and info["label_set"] == "Pascal-Person-Part"
    assert info["checkpoint"]["path"] == str(official_pth) and len(info["checkpoint"]["sha256"]) == 64


def test_aliases_and_default(monkeypatch, official_pth):
    assert DEFAULT_MODEL == "schp-pascal"
    assert {"schp-pascal", "schp-lip", "schp-atr", "segformer-atr"} <= set(MODELS)
    pascal = MODELS["schp-pascal"].source
    assert isinstance(pascal, HubFile) and pascal.filename == "exp-schp-201908270938-pascal-person-part.pth"
    assert len(pascal.sha256) == 64 and len(pascal.revision) == 40
    downloads = []

    def fake_download(repo_id, filename, revision=None):  # the Hub, as huggingface_hub would answer
        downloads.append((repo_id, filename, revision))
        return str(official_pth)

    monkeypatch.setattr("huggingface_hub.hf_hub_download", fake_download)
    # the pinned sha256 is checked: a file that is not the official one is refused
    with pytest.raises(BuildError, match="does not have the expected sha256"):
        make_model_parser(None, "cpu", (64, 32))
    assert downloads == [(pascal.repo_id, pascal.filename, pascal.revision)]
    monkeypatch.setitem(MODELS, "schp-pascal", replace(MODELS["schp-pascal"], source=replace(pascal, sha256=None)))
    parser = make_model_parser(None, "cpu", (64, 32))
    info = parser.describe()
    assert isinstance(parser, SchpParser) and info["alias"] == "schp-pascal"
    assert info["checkpoint"] == {
        "repo_id": pascal.repo_id,
        "filename": pascal.filename,
        "revision": pascal.revision,
        "provenance": pascal.provenance,
    }
    assert "official SCHP checkpoint" in pascal.provenance
    assert model_kind(str(official_pth)) == "schp" and model_kind("owner/repo/file.pth") == "schp"
    with pytest.raises(BuildError, match="'schp-pasca' is neither a known alias .schp-pascal, schp-lip"):
        make_model_parser("schp-pasca", "cpu", (64, 32))


def test_segformer_folders_still_go_to_transformers(tiny_model):
    assert model_kind(str(tiny_model)) == "segformer"
    parser = make_model_parser(str(tiny_model), "cpu", (64, 32))
    assert parser.describe()["model"] == str(tiny_model) and "alias" not in parser.describe()


def test_build_with_an_schp_checkpoint_end_to_end(official_pth, tmp_path):
    prcc_tree = make_prcc_tree(tmp_path / "src", n_train=1, n_test=1, per_camera=1)  # 11 images: ResNet-101 is slow
    outs = []
    for batch_size, workers in ((1, 1), (4, 2)):
        out = tmp_path / f"b{batch_size}"
        assert (
            main(
                [
                    "build",
                    "prcc",
                    str(prcc_tree.root),
                    "--out",
                    str(out),
                    "--model",
                    str(official_pth),
                    "--batch-size",
                    str(batch_size),
                    "--workers",
                    str(workers),
                    "--parse-size",
                    "64x32",
                    "--device",
                    "cpu",
                    "--no-progress",
                ]
            )
            == 0
        )
        outs.append(out)
    ds = load_dataset(str(outs[0]))
    other = load_dataset(str(outs[1]))
    for split in ds:
        assert len(ds[split]) == len(other[split]) > 0
        for a, b in zip(ds[split], other[split], strict=True):
            assert a["source_path"] == b["source_path"]
            parts_a, parts_b = np.asarray(a["parsing"]), np.asarray(b["parsing"])
            assert parts_a.shape == np.asarray(a["image"]).shape[:2] and parts_a.max() <= 6
            assert np.array_equal(parts_a, parts_b)  # part maps independent of batch size and workers
    report = json.loads((outs[0] / "build_report.json").read_text())
    assert report["parser"]["architecture"].startswith("SCHP") and report["parser"]["label_set"] == "Pascal-Person-Part"
    card = (outs[0] / "README.md").read_text()
    assert "SCHP" in card and "Pascal-Person-Part" in card and official_pth.name in card
