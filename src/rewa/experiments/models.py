"""Models for :func:`rewa.experiments.train`, written here (torchvision's wheels on PyPI do not
import beside every torch build, so nothing is taken from it).

* ``mlp``: LeNet-300-100 (LeCun et al. 1998): flatten, 300, 100, classes, ReLU between.
* ``cnn``: two 3x3 convolutions (32, 64) with ReLU and 2x max-pool each, then 128, classes;
  1-d convolutions for inputs ``(C, L)``, 2-d for ``(C, H, W)``.
* ``cnn-bn``: ``cnn`` with batch-norm after each convolution (before its ReLU; the convolutions
  then have no bias). :func:`rewa.param_groups` keeps the batch-norm scales and shifts dense.
* ``resnet-small``: a small ResNet with batch-norm (the paper's family, sized for 8x8 digits
  and MNIST-1D): a 3x3 stem of 16 channels, three basic blocks of 16, 32, 64 channels (strides
  1, 2, 2; a 1x1 convolution with batch-norm on the shortcut where the shape changes), global
  average pooling and a linear classifier; 1-d for inputs ``(C, L)``, 2-d for ``(C, H, W)``.
* ``resnet18-cifar`` (also ``resnet18``): the CIFAR ResNet-18 (He et al. 2016; 3x3 stem with
  stride 1, no max-pool), basic blocks [2, 2, 2, 2]; for 32-pixel inputs (11,173,962 parameters
  with 10 classes), about 12 times cheaper per image than the ImageNet ResNet-18 at 224 pixels.
* ``resnet50``: the ImageNet ResNet-50 (7x7 stem, stride 2, 3x3 max-pool), bottlenecks
  [3, 4, 6, 3], stride on the 3x3 convolution (torchvision's "v1.5"); this library's own
  parameter names (``stem``, ``layers``, ``shortcut``).
* ``resnet18-imagenet`` / ``resnet50-imagenet``: the same ImageNet architectures with the
  state_dict of torchvision's ``resnet18`` / ``resnet50`` (the same keys, shapes and buffers:
  ``conv1``, ``bn1``, ``layer1.0.conv1``, ..., ``layerN.0.downsample.{0,1}``, ``fc``), so
  torchvision's weights load with ``load_state_dict``; 11,689,512 and 25,557,032 parameters
  with 1000 classes.
* ``resnet18-imagenet-nobias``: ``resnet18-imagenet`` whose classifier has no bias, as the
  paper code's (a bias-free 1x1 convolution on the pooled features, the same function as a
  bias-free linear layer): 11,181,632 parameters with 10 classes (11,181,642 with the bias).
  Its state_dict is torchvision's without ``fc.bias`` (load with ``strict=False``, or drop
  ``fc.*`` when the classes differ anyway).

* ``gpt``: a small GPT for token inputs ``(context,)``, logits ``(batch, context, vocab)``
  (:mod:`rewa.experiments.gpt`; its sizes are ``options``: ``layers``, ``heads``, ``width``,
  ``mlp_ratio``, ``dropout``, ``bias``, ``tie``, ``sparsify``; GPT-2 initialization).

Convolutions and linear layers get Kaiming-normal weights (fan-in, ReLU), as in the paper's
code (Appendix D.7: "Initialization: Kaiming"); biases start at 0, batch-norm at (1, 0).
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["MODELS", "make_model"]

MODELS = (
    "mlp",
    "cnn",
    "cnn-bn",
    "resnet-small",
    "resnet18",
    "resnet18-cifar",
    "resnet50",
    "resnet18-imagenet",
    "resnet18-imagenet-nobias",
    "resnet50-imagenet",
    "gpt",
)


def _mlp(input_shape, classes: int) -> nn.Module:
    n_in = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(), nn.Linear(n_in, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(), nn.Linear(100, classes)
    )


def _cnn(input_shape, classes: int, batch_norm: bool = False) -> nn.Module:
    if len(input_shape) not in (2, 3):
        name = "cnn-bn" if batch_norm else "cnn"
        raise ValueError(f"model {name!r} needs inputs (C, L) or (C, H, W), got shape {tuple(input_shape)}")
    conv, pool, norm = (
        (nn.Conv1d, nn.MaxPool1d, nn.BatchNorm1d)
        if len(input_shape) == 2
        else (nn.Conv2d, nn.MaxPool2d, nn.BatchNorm2d)
    )
    spatial = list(input_shape[1:])
    layers: list[nn.Module] = []
    channels = input_shape[0]
    for width in (32, 64):
        if batch_norm:
            layers += [conv(channels, width, 3, padding=1, bias=False), norm(width), nn.ReLU()]
        else:
            layers += [conv(channels, width, 3, padding=1), nn.ReLU()]
        if min(spatial) >= 2:  # tiny inputs (8x8 digits) still take two pools; never below 1
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        channels = width
    return nn.Sequential(
        *layers, nn.Flatten(), nn.Linear(channels * math.prod(spatial), 128), nn.ReLU(), nn.Linear(128, classes)
    )


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(cin, width, stride)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = width * 4
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


def _shortcut(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """A ResNet with a CIFAR stem (3x3, stride 1, no pool) or an ImageNet stem (7x7/2 + pool)."""

    def __init__(self, block, depths, classes: int, in_channels: int = 3, cifar_stem: bool = True):
        super().__init__()
        if cifar_stem:
            self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
            )
        stages, cin = [], 64
        for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class _TVBasic(nn.Module):
    """A basic block under torchvision's names: conv1, bn1, conv2, bn2, downsample.{0,1}."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class _TVBottleneck(nn.Module):
    """A bottleneck (stride on the 3x3 convolution) under torchvision's names."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(cin, width * 4, stride)

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ImageNetResNet(nn.Module):
    """The ImageNet ResNet (7x7/2 stem, 3x3/2 max-pool) with torchvision's state_dict layout.

    ``classifier_bias=False`` drops ``fc.bias`` (the paper code's classifier).
    """

    def __init__(self, block, depths, classes: int, in_channels: int = 3, classifier_bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = 64
        for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths)):
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes, bias=classifier_bias)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class _SmallBlock(nn.Module):
    """A basic block (two 3x3 convolutions with batch-norm) in 1-d or 2-d."""

    def __init__(self, conv, norm, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = conv(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = norm(cout)
        self.conv2 = conv(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = norm(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(conv(cin, cout, 1, stride, bias=False), norm(cout))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """``resnet-small``: stem 16, blocks (16, 32, 64) with strides (1, 2, 2), pool, linear."""

    def __init__(self, input_shape: tuple[int, ...], classes: int, widths: tuple[int, ...] = (16, 32, 64)):
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ValueError(f"model 'resnet-small' needs inputs (C, L) or (C, H, W), got shape {tuple(input_shape)}")
        one_d = len(input_shape) == 2
        conv, norm = (nn.Conv1d, nn.BatchNorm1d) if one_d else (nn.Conv2d, nn.BatchNorm2d)
        self.stem = nn.Sequential(conv(input_shape[0], widths[0], 3, 1, 1, bias=False), norm(widths[0]), nn.ReLU())
        blocks, cin = [], widths[0]
        for i, width in enumerate(widths):
            blocks.append(_SmallBlock(conv, norm, cin, width, 1 if i == 0 else 2))
            cin = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool1d(1) if one_d else nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.blocks(self.stem(x))), 1))


def _init(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def make_model(name: str, input_shape: tuple[int, ...], num_classes: int, **options) -> nn.Module:
    """The model ``name`` (one of :data:`MODELS`) for inputs of ``input_shape`` (no batch dim);
    ``options``: the sizes of ``gpt`` (the other models have none).

    Example:
        >>> import torch
        >>> from rewa.experiments.models import make_model
        >>> model = make_model("resnet18", (3, 32, 32), 10)
        >>> model(torch.zeros(2, 3, 32, 32)).shape, sum(p.numel() for p in model.parameters())
        (torch.Size([2, 10]), 11173962)
    """
    input_shape = tuple(int(s) for s in input_shape)
    if options and name != "gpt":
        raise ValueError(f"model {name!r} takes no options, got {', '.join(sorted(options))}")
    if name == "gpt":
        from .gpt import GPT

        if len(input_shape) != 1:
            raise ValueError(f"model 'gpt' needs token inputs of shape (context,), got shape {input_shape}")
        return GPT(input_shape[0], num_classes, **options)
    if name == "mlp":
        return _init(_mlp(input_shape, num_classes))
    if name in ("cnn", "cnn-bn"):
        return _init(_cnn(input_shape, num_classes, batch_norm=name == "cnn-bn"))
    if name == "resnet-small":
        return _init(SmallResNet(input_shape, num_classes))
    if name in MODELS and name.startswith("resnet") and name != "resnet-small":
        if len(input_shape) != 3:
            raise ValueError(f"model {name!r} needs image inputs (C, H, W), got shape {input_shape}")
        if name.endswith("-imagenet") or name.endswith("-imagenet-nobias"):
            block, depths = (_TVBasic, (2, 2, 2, 2)) if name.startswith("resnet18") else (_TVBottleneck, (3, 4, 6, 3))
            bias = not name.endswith("-nobias")
            return _init(ImageNetResNet(block, depths, num_classes, input_shape[0], classifier_bias=bias))
        if name in ("resnet18", "resnet18-cifar"):
            return _init(ResNet(_Basic, (2, 2, 2, 2), num_classes, input_shape[0], cifar_stem=True))
        return _init(ResNet(_Bottleneck, (3, 4, 6, 3), num_classes, input_shape[0], cifar_stem=False))
    raise ValueError(f"model={name!r} must be one of {MODELS}")
