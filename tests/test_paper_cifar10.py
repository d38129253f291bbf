"""The paper's CIFAR-10 run as its code ran it: torchvision-layout ResNets, the 224-pixel
ImageNet pipeline on tensors, presets on every parameter, the paper's sweep, ``rewa reproduce
cifar10`` end to end on a generated CIFAR-layout directory."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from rewa.cli import build_parser, main
from rewa.experiments.models import make_model
from rewa.experiments.presets import PRESETS
from rewa.experiments.transforms import crop_boxes, random_resized_crop, resize_center_crop
from rewa.optim.registry import create_optimizer
from rewa.sparsity import PAPER_THRESHOLDS, threshold_sweep
from rewa.training.config import TrainConfig, resolve_config
from rewa.training.loop import train
from rewa.training.plan import method_hyperparameters


def _bn(name: str, c: int) -> list[tuple[str, tuple]]:
    """torchvision's BatchNorm2d state: weight, bias and the three buffers."""
    return [(f"{name}.{k}", (c,)) for k in ("weight", "bias", "running_mean", "running_var")] + [
        (f"{name}.num_batches_tracked", ())
    ]


# torchvision.models.resnet18(num_classes=1000).state_dict(): names and shapes, in order
_RESNET18 = (
    [("conv1.weight", (64, 3, 7, 7))]
    + _bn("bn1", 64)
    + [("layer1.0.conv1.weight", (64, 64, 3, 3))]
    + _bn("layer1.0.bn1", 64)
    + [("layer1.0.conv2.weight", (64, 64, 3, 3))]
    + _bn("layer1.0.bn2", 64)
    + [("layer1.1.conv1.weight", (64, 64, 3, 3))]
    + _bn("layer1.1.bn1", 64)
    + [("layer1.1.conv2.weight", (64, 64, 3, 3))]
    + _bn("layer1.1.bn2", 64)
    + [("layer2.0.conv1.weight", (128, 64, 3, 3))]
    + _bn("layer2.0.bn1", 128)
    + [("layer2.0.conv2.weight", (128, 128, 3, 3))]
    + _bn("layer2.0.bn2", 128)
    + [("layer2.0.downsample.0.weight", (128, 64, 1, 1))]
    + _bn("layer2.0.downsample.1", 128)
    + [("layer2.1.conv1.weight", (128, 128, 3, 3))]
    + _bn("layer2.1.bn1", 128)
    + [("layer2.1.conv2.weight", (128, 128, 3, 3))]
    + _bn("layer2.1.bn2", 128)
    + [("layer3.0.conv1.weight", (256, 128, 3, 3))]
    + _bn("layer3.0.bn1", 256)
    + [("layer3.0.conv2.weight", (256, 256, 3, 3))]
    + _bn("layer3.0.bn2", 256)
    + [("layer3.0.downsample.0.weight", (256, 128, 1, 1))]
    + _bn("layer3.0.downsample.1", 256)
    + [("layer3.1.conv1.weight", (256, 256, 3, 3))]
    + _bn("layer3.1.bn1", 256)
    + [("layer3.1.conv2.weight", (256, 256, 3, 3))]
    + _bn("layer3.1.bn2", 256)
    + [("layer4.0.conv1.weight", (512, 256, 3, 3))]
    + _bn("layer4.0.bn1", 512)
    + [("layer4.0.conv2.weight", (512, 512, 3, 3))]
    + _bn("layer4.0.bn2", 512)
    + [("layer4.0.downsample.0.weight", (512, 256, 1, 1))]
    + _bn("layer4.0.downsample.1", 512)
    + [("layer4.1.conv1.weight", (512, 512, 3, 3))]
    + _bn("layer4.1.bn1", 512)
    + [("layer4.1.conv2.weight", (512, 512, 3, 3))]
    + _bn("layer4.1.bn2", 512)
    + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]
)


def _resnet50_table() -> list[tuple[str, tuple]]:
    """torchvision's resnet50: bottlenecks (1x1 w, 3x3 w stride s, 1x1 4w), downsample on block 0."""
    rows = [("conv1.weight", (64, 3, 7, 7))] + _bn("bn1", 64)
    cin = 64
    for layer, (w, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for b in range(blocks):
            p = f"layer{layer}.{b}"
            rows += [(f"{p}.conv1.weight", (w, cin, 1, 1))] + _bn(f"{p}.bn1", w)
            rows += [(f"{p}.conv2.weight", (w, w, 3, 3))] + _bn(f"{p}.bn2", w)
            rows += [(f"{p}.conv3.weight", (4 * w, w, 1, 1))] + _bn(f"{p}.bn3", 4 * w)
            if b == 0:
                rows += [(f"{p}.downsample.0.weight", (4 * w, cin, 1, 1))] + _bn(f"{p}.downsample.1", 4 * w)
            cin = 4 * w
    return rows + [("fc.weight", (1000, 2048)), ("fc.bias", (1000,))]


def _table(model) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_imagenet_resnets_have_torchvisions_state_dict_names_and_shapes():
    r18 = make_model("resnet18-imagenet", (3, 224, 224), 1000)
    assert len(_RESNET18) == 122 and _table(r18) == _RESNET18
    r50 = make_model("resnet50-imagenet", (3, 224, 224), 1000)
    assert len(_resnet50_table()) == 320 and _table(r50) == _resnet50_table()
    # torchvision's counts; the classifier of the paper code has no bias (11,181,632 with 10 classes)
    assert (_params(r18), _params(r50)) == (11_689_512, 25_557_032)
    assert _params(make_model("resnet18-imagenet", (3, 224, 224), 10)) == 11_181_642
    nobias = make_model("resnet18-imagenet-nobias", (3, 224, 224), 10)
    assert _params(nobias) == 11_181_632
    assert [k for k, _ in _table(nobias)] == [k for k, _ in _RESNET18 if k != "fc.bias"]
    assert nobias(torch.zeros(2, 3, 224, 224)).shape == (2, 10)
    # weights in torchvision's layout load as they are
    r18.load_state_dict(make_model("resnet18-imagenet", (3, 224, 224), 1000).state_dict())
    # the 32-pixel CIFAR ResNet-18 keeps its name (and a clear one)
    assert _params(make_model("resnet18-cifar", (3, 32, 32), 10)) == 11_173_962


def test_imagenet_resnets_equal_torchvisions_when_it_imports():
    models = pytest.importorskip("torchvision.models")
    for name, ours in (("resnet18", "resnet18-imagenet"), ("resnet50", "resnet50-imagenet")):
        theirs = getattr(models, name)(num_classes=1000)
        mine = make_model(ours, (3, 224, 224), 1000)
        assert _table(mine) == _table(theirs)
        mine.load_state_dict(theirs.state_dict())
        mine.eval(), theirs.eval()
        x = torch.randn(2, 3, 224, 224)
        torch.testing.assert_close(mine(x), theirs(x))


def _images(n=6, h=32, w=32, seed=0):
    return torch.rand(n, 3, h, w, generator=torch.Generator().manual_seed(seed))


def test_random_resized_crop_resamples_each_images_box_as_interpolate_does():
    x = _images()
    gen = torch.Generator().manual_seed(3)
    top, left, h, w = crop_boxes(len(x), 32, 32, torch.Generator().manual_seed(3))
    out = random_resized_crop(x, 24, gen, flip=False)
    assert out.shape == (6, 3, 24, 24)
    for i in range(len(x)):  # the same box cut out and resized by interpolate
        box = x[i : i + 1, :, top[i] : top[i] + h[i], left[i] : left[i] + w[i]]
        expected = F.interpolate(box, size=(24, 24), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[i : i + 1], expected, atol=1e-5, rtol=1e-5)
    # the flip mirrors the crop; the same generator state gives the same boxes and coins
    a = random_resized_crop(x, 24, torch.Generator().manual_seed(5))
    b = random_resized_crop(x, 24, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)
    full = random_resized_crop(x, 64, torch.Generator().manual_seed(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    plain = F.interpolate(x, size=(64, 64), mode="bilinear", align_corners=False)
    flipped = plain.flip(-1)
    for i in range(len(x)):
        assert torch.allclose(full[i], plain[i], atol=1e-5) or torch.allclose(full[i], flipped[i], atol=1e-5)


def test_crop_boxes_follow_random_resized_crops_rules():
    top, left, h, w = crop_boxes(4000, 32, 32, torch.Generator().manual_seed(0))
    assert (h >= 1).all() and (w >= 1).all() and (top >= 0).all() and (left >= 0).all()
    assert (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w).double() / 1024
    assert area.min() >= 0.08 * 0.8 and area.max() <= 1.0  # rounding of w, h moves the area a little
    aspect = (w / h).double()
    assert aspect.min() >= 0.6 and aspect.max() <= 1.7
    assert 0.45 < area.mean() < 0.6  # the mean of U(0.08, 1), shifted by the rejected tries
    assert len(set(top.tolist())) > 10 and len(set(left.tolist())) > 10


def test_resize_center_crop_is_resize_256_then_the_central_224():
    x = _images(3)
    expected = F.interpolate(x, size=(256, 256), mode="bilinear", align_corners=False)[..., 16:240, 16:240]
    torch.testing.assert_close(resize_center_crop(x, 256, 224), expected)
    with pytest.raises(ValueError, match="size=300 must be <= resize=256"):
        resize_center_crop(x, 256, 300)
    with pytest.raises(ValueError, match="floating-point"):
        resize_center_crop(torch.zeros(1, 3, 8, 8, dtype=torch.uint8), 16, 8)


def test_paper_presets_put_every_parameter_in_groups_with_k9_and_decay_1e4():
    model = make_model("resnet18-imagenet-nobias", (3, 224, 224), 10)
    for name, expected in (
        ("cifar10-resnet18-rewa", dict(K=9, M=2, eps=0.0, weight_decay=1e-4, momentum=0.875)),
        ("cifar10-resnet18-rewa-adamw", dict(K=9, M=2, eps=0.0, weight_decay=1e-4)),
        ("cifar10-resnet18-sgd", dict(weight_decay=1e-4, momentum=0.875)),
        ("cifar10-resnet18-l1", dict(strength=1e-5, momentum=0.875)),
    ):
        c = resolve_config(name)
        assert (c.model, c.transform, c.norm, c.grad_clip_norm) == (
            "resnet18-imagenet-nobias",
            "imagenet",
            "sparsify",
            0,
        )
        opt = create_optimizer(c.method, model, norm=c.norm, **method_hyperparameters(c))  # as the loop builds it
        covered = [p for g in opt.param_groups for p in g["params"]]
        assert len(covered) == len(list(model.parameters())), name  # batch-norm included
        for g in opt.param_groups:
            assert {k: g[k] for k in expected} == expected, name


def test_32px_presets_keep_the_earlier_cifar_settings():
    fast = resolve_config("cifar10-resnet18-32px-rewa")
    assert (fast.model, fast.transform, fast.norm, fast.lr, fast.K, fast.M, fast.weight_decay) == (
        "resnet18-cifar",
        "native",
        "dense",
        0.256,
        9,
        2,
        1e-4,
    )
    c = resolve_config("imagenet-resnet50-rewa")
    assert (c.model, c.prune_sparsity, c.finetune_epochs, c.finetune_lr, c.K, c.eps) == (
        "resnet50-imagenet",
        0.9,
        10,
        1e-3,
        3,
        1e-3 / 3,
    )
    assert resolve_config("imagenet-resnet50-rewa-eps1e-5").eps == 1e-5 / 3
    assert {"cifar10-resnet18-32px-sgd", "cifar10-resnet18-32px-l1", "cifar10-resnet18-32px-rewa-adamw"} <= set(PRESETS)


def test_threshold_sweep_takes_the_papers_thresholds():
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Flatten(), torch.nn.Linear(4, 2)
    )
    with torch.no_grad():
        model[1].weight.fill_(1e-6)  # a normalization scale below most thresholds: neither zeroed nor counted
    seen = []
    result = threshold_sweep(model, lambda m: seen.append(m[1].weight.detach().abs().min().item()) or 0.0, "paper")
    assert [p.threshold for p in result.points] == list(PAPER_THRESHOLDS)
    assert (
        PAPER_THRESHOLDS[:9] == (1e-8, 1e-5, 2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3) and PAPER_THRESHOLDS[-1] == 0.5
    )
    assert seen == pytest.approx([1e-6] * len(PAPER_THRESHOLDS))
    assert result.points[0].total == 4 * 9 + 2 * 4  # conv + classifier weights only
    with pytest.raises(ValueError, match="thresholds='papers' must be a list of numbers or one of 'paper'"):
        threshold_sweep(model, lambda m: 0.0, "papers")


def test_imagenet_transform_is_refused_where_it_cannot_apply():
    with pytest.raises(ValueError, match="transform='imagenet' needs uint8 images"):
        train(TrainConfig(dataset="digits", transform="imagenet", epochs=1, out="", progress=False))
    data = torch.utils.data.TensorDataset(torch.randn(8, 3, 8, 8), torch.arange(8) % 2)
    with pytest.raises(ValueError, match="transform='imagenet' applies to datasets loaded by name"):
        train(TrainConfig(transform="imagenet", epochs=1, out="", progress=False), train_data=data)
    with pytest.raises(ValueError, match="transform='x' must be one of"):
        TrainConfig(transform="x")


def _write_cifar(root: Path, n_per_batch: int = 4) -> None:
    """The official python-pickle layout: data_batch_1..5, test_batch, batches.meta."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {
            b"batch_label": name.encode(),
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, n_per_batch).tolist(),
            b"filenames": [f"img{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(root / name, "wb") as f:
            pickle.dump(entry, f)
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_cases_per_batch": n_per_batch}
    with open(root / "batches.meta", "wb") as f:
        pickle.dump(meta, f)


def test_reproduce_cifar10_trains_one_step_at_224_pixels_and_writes_the_table(tmp_path, monkeypatch, capsys):
    import rewa.training.loop as loop

    data = tmp_path / "cifar-10-batches-py"
    _write_cifar(data)
    shapes = []
    built = loop.make_model

    def recording(name, input_shape, classes):
        model = built(name, input_shape, classes)
        model.register_forward_pre_hook(lambda m, args: shapes.append((m.training, tuple(args[0].shape))))
        return model

    monkeypatch.setattr(loop, "make_model", recording)
    out = tmp_path / "out"
    args = ["reproduce", "cifar10", "--data-dir", str(tmp_path), "--rows", "rewa", "--epochs", "1"]
    assert main(args + ["--out", str(out), "--estimate-steps", "1", "--threads", "1", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "estimate: 1 row(s) x 1 epochs x 20 images at 224 px on cpu" in printed
    train_steps = [s for training, s in shapes if training]
    assert train_steps == [(20, 3, 224, 224)]  # one step of the 20 images (batch 256), at 224 pixels
    assert {s[1:] for _, s in shapes} == {(3, 224, 224)}  # evaluation too
    results = json.loads((out / "results.json").read_text())["rows"]["rewa"]
    assert results["input_shape"] == [3, 224, 224] and results["parameters"] == 11_181_632
    assert {p["threshold"] for p in results["sweep"]} >= set(PAPER_THRESHOLDS)
    plan = json.loads((out / "rewa" / "config.json").read_text())["plan"]
    assert plan["data"]["input_shape"] == [3, 224, 224] and plan["norm"] == "sparsify"
    table = (out / "table.md").read_text()
    assert "| rewa | 10.4x | 91.87 |" in table and "| rewa | 121x | 90.24 |" in table
    assert "| 1e-08 | yes |" in table


def test_reproduce_cifar10_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["reproduce", "cifar10", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--data-dir", "--rows", "--epochs", "--device", "--bf16", "--channels-last", "--workers", "--out"):
        assert flag in text, flag
    reproduce = next(
        a for a in build_parser()._subparsers._group_actions[0].choices["reproduce"]._actions if a.dest == "target"
    )
    parser = reproduce.choices["cifar10"]
    for action in parser._actions:
        assert action.help and action.help.strip(), action.option_strings
    assert "rewa sgd l1 rewa-adamw" in text or "rewa, sgd, l1, rewa-adamw" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["--data-dir", "d", "--rows", "adam"])
    assert main(["reproduce", "cifar10", "--data-dir", "/nonexistent/dir", "--estimate-steps", "0"]) == 2
    assert "Nothing is downloaded" in capsys.readouterr().err
