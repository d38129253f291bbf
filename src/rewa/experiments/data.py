"""Datasets for :func:`rewa.experiments.train`: by name, from a directory, or any ``Dataset``.

Nothing here downloads anything.

* ``digits``: scikit-learn's bundled 8x8 digits (1797 images), pixels scaled to ``[0, 1]``,
  shape ``(1, 8, 8)``; a stratified 25% test split (seed 0). Needs the ``sklearn`` extra.
* ``mnist1d``: MNIST-1D (Greydanus 2020), generated locally by its package's own generator
  with the standard arguments (4000 train / 1000 test, length 40, seed 42), shape ``(1, 40)``.
  Its loader ``get_dataset`` downloads by default; only ``make_dataset`` is called here.
  Needs the ``mnist1d`` extra.
* ``cifar10`` / ``cifar100``: the python-pickle layout of the official archives in ``data_dir``
  (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``), held in memory as uint8.
  They are read by an unpickler that admits only what those files hold (dicts, lists, bytes,
  str, ints and numpy arrays): a file referring to any other Python object is refused, so a
  crafted file cannot run code.
* ``imagefolder``: ``data_dir/train/<class>/*.jpg`` and ``data_dir/val/<class>/*.jpg``
  (ImageNet layout), decoded with Pillow per sample in DataLoader workers.
* ``text``: characters of Python's ``pydoc_data.topics`` or of the UTF-8 file ``data_dir``,
  contiguous 90/5/5 train / validation / test parts, windows of ``context`` tokens with
  next-token targets (:mod:`rewa.experiments.text`).

Small datasets are :class:`TensorData`: tensors in memory, batches cut by indexing (no
per-sample Python work), augmentation done on whole batches (:func:`augment_batch`).
"""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .text import TEXT_SPLITS, CharVocab, builtin_text, min_characters, read_text_file

__all__ = [
    "TensorData",
    "DatasetBundle",
    "load_dataset",
    "make_mnist1d",
    "DATASETS",
    "augment_batch",
    "imagenet_view",
    "split_validation",
    "TokenWindows",
    "text_splits",
]

DATASETS = ("digits", "mnist1d", "cifar10", "cifar100", "imagefolder", "text")

# Per-channel statistics of the CIFAR training sets (pixels in [0, 1]).
_CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
_IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@dataclass
class TensorData:
    """Inputs and labels in memory; ``x`` may be uint8 images, turned into floats per batch.

    ``mean``/``std`` (per channel) normalize uint8 images after scaling to ``[0, 1]``.
    ``size`` (with ``resize``): the model sees ``size x size`` inputs, the ImageNet pipeline's
    (:func:`imagenet_view`): :meth:`batch` gives ``Resize(resize)`` + ``CenterCrop(size)`` of
    each image; training batches are random resized crops (:mod:`rewa.training.batches`).
    """

    x: Tensor
    y: Tensor
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    size: int | None = None
    resize: int | None = None

    def __post_init__(self):
        if len(self.x) != len(self.y):
            raise ValueError(f"inputs and labels differ in length: {len(self.x)} != {len(self.y)}")

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: Tensor) -> TensorData:
        return TensorData(self.x[index], self.y[index], self.mean, self.std, self.size, self.resize)

    def to(self, device) -> TensorData:
        return TensorData(self.x.to(device), self.y.to(device), self.mean, self.std, self.size, self.resize)

    def batch(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """Float inputs (normalized if uint8; resized and centre-cropped if ``size``) and int64
        labels of the given rows."""
        x = as_float(self.x[index], self.mean, self.std)
        if self.size is not None:
            from .transforms import resize_center_crop

            x = resize_center_crop(x, self.resize or self.size, self.size)
        return x, self.y[index]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input as the model sees it."""
        if self.size is not None:
            return (int(self.x.shape[1]), self.size, self.size)
        return tuple(self.x.shape[1:])


def as_float(x: Tensor, mean=None, std=None) -> Tensor:
    if x.dtype != torch.uint8:
        return x
    x = x.float().div_(255.0)
    if mean is not None:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        x = x.sub_(torch.tensor(mean, device=x.device).view(shape)).div_(torch.tensor(std, device=x.device).view(shape))
    return x


@dataclass
class DatasetBundle:
    """Train / test data (``TensorData`` or any map-style ``Dataset``) and what models need."""

    name: str
    train: object
    test: object | None
    input_shape: tuple[int, ...]
    num_classes: int
    # "none" | "cifar" (crop 4 + flip) | "resized-crop" (imagenet_view) | "imagenet" (done by the Dataset)
    augment: str = "none"
    val: object | None = None  # a validation split of the dataset's own (text: contiguous)
    vocab: object | None = None  # text: the CharVocab of the training split
    targets: str = "class"  # "class": one label per sample; "next-token": one per position


def imagenet_view(bundle: DatasetBundle, size: int = 224, resize: int = 256) -> DatasetBundle:
    """``bundle`` (images in memory, e.g. CIFAR) seen through the ImageNet pipeline, as the
    paper code trains CIFAR-10: ``size``-pixel inputs (training: ``RandomResizedCrop(size)`` and
    a horizontal flip; evaluation: ``Resize(resize)`` and ``CenterCrop(size)``) normalized with
    the ImageNet statistics. ``imagefolder`` data already is; the others are refused.
    """
    if bundle.augment == "imagenet":
        return bundle
    parts = [p for p in (bundle.train, bundle.test) if p is not None]
    if not all(isinstance(p, TensorData) and p.x.dim() == 4 and p.x.dtype == torch.uint8 for p in parts):
        raise ValueError(
            f"transform='imagenet' needs uint8 images (N, C, H, W) in memory (cifar10, cifar100) or "
            f"imagefolder; dataset {bundle.name!r} has inputs of shape {bundle.input_shape}"
        )
    mean, std = _IMAGENET_STATS
    train, test = (
        TensorData(p.x, p.y, mean, std, size, resize) if p is not None else None for p in (bundle.train, bundle.test)
    )
    return DatasetBundle(
        bundle.name, train, test, (bundle.input_shape[0], size, size), bundle.num_classes, augment="resized-crop"
    )


def augment_batch(x: Tensor, generator: torch.Generator, *, padding: int = 4) -> Tensor:
    """CIFAR augmentation of a batch ``(N, C, H, W)``: random crop after zero padding, random flip.

    Each image gets its own offsets in ``[0, 2*padding]`` and flip coin from ``generator`` (on
    the batch's device); padding with 0 happens before normalization, as ``RandomCrop(32, 4)``
    on the raw image does. No per-sample Python loop.
    """
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (padding, padding, padding, padding))
    dev = x.device
    top = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    left = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=dev)
    flip = torch.rand(n, generator=generator, device=dev) < 0.5
    rows = (top[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # (N, 1, H, 1)
    cols = left[:, None] + torch.arange(w, device=dev)
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (N, 1, 1, W)
    batch = torch.arange(n, device=dev)[:, None, None, None]
    chan = torch.arange(x.shape[1], device=dev)[None, :, None, None]
    return padded[batch, chan, rows, cols]


def split_validation(train: object, fraction: float, seed: int):
    """``(train, val)``: a random ``fraction`` of the training data held out (fixed by ``seed``)."""
    if fraction == 0:
        return train, None
    n = len(train)
    n_val = int(round(fraction * n))
    if not 0 < n_val < n:
        raise ValueError(
            f"val_fraction={fraction} leaves {n_val} of {n} samples for validation; "
            f"it must be in [0, 1) and leave at least one sample on each side"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val_idx, train_idx = order[:n_val].sort().values, order[n_val:].sort().values
    if isinstance(train, TensorData):
        return train.subset(train_idx), train.subset(val_idx)
    return torch.utils.data.Subset(train, train_idx.tolist()), torch.utils.data.Subset(train, val_idx.tolist())


# -- by name -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)  # read once per process (the tensors are never written to)
def _digits() -> DatasetBundle:
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError("dataset 'digits' needs scikit-learn: pip install 'rewa[sklearn]'") from error
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.25, random_state=0, stratify=data.target
    )
    as_x = lambda a: torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8)  # noqa: E731
    as_y = lambda a: torch.as_tensor(a, dtype=torch.int64)  # noqa: E731
    return DatasetBundle(
        "digits", TensorData(as_x(x_train), as_y(y_train)), TensorData(as_x(x_test), as_y(y_test)), (1, 8, 8), 10
    )


def _mnist1d(num_samples: int = 5000) -> DatasetBundle:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as error:
        raise ImportError("dataset 'mnist1d' needs the mnist1d package: pip install 'rewa[mnist1d]'") from error
    import random

    # The generator reseeds numpy's and python's global generators: keep the caller's streams.
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        args = get_dataset_args()
        args.num_samples = num_samples  # 80% train / 20% test; the standard set has 5000
        data = make_dataset(args)  # local generation
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    as_x = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32).reshape(len(a), 1, -1)  # noqa: E731
    as_y = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64)  # noqa: E731
    train, test = TensorData(as_x(data["x"]), as_y(data["y"])), TensorData(as_x(data["x_test"]), as_y(data["y_test"]))
    return DatasetBundle("mnist1d", train, test, tuple(train.x.shape[1:]), 10)


_CIFAR_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], b"labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], b"fine_labels", 100),
}


class _RefusedGlobal(ValueError):
    """A pickle global outside the allow-list of the CIFAR files."""


class _CifarUnpickler(pickle.Unpickler):
    """Reads the official CIFAR python files and nothing else: their only globals are numpy's
    array reconstruction; any other global (which could run code) is refused."""

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str):
        allowed = _CIFAR_GLOBALS.get((module, name))
        if allowed is None:
            raise _RefusedGlobal(
                f"{str(self.path)!r} is not an official CIFAR python file: it refers to "
                f"{module}.{name}, which is not unpickled (only numpy arrays, dicts, lists, bytes, "
                "str and ints are read)"
            )
        return allowed


def _numpy_reconstruct():
    core = getattr(np, "_core", None)  # numpy >= 2 (``numpy.core`` is a deprecated alias)
    if core is None:
        core = np.core
    return core.multiarray._reconstruct


_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct(),
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


def _read_cifar_file(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """The images (uint8, ``(n, 3, 32, 32)``) and integer labels of one CIFAR python file."""
    with open(path, "rb") as f:
        try:
            entry = _CifarUnpickler(f, path).load()
        except _RefusedGlobal:
            raise
        except Exception as error:  # truncated or foreign files fail in many ways inside pickle
            raise ValueError(
                f"{str(path)!r} cannot be read as a CIFAR python file ({type(error).__name__}: {error})"
            ) from None
    if not isinstance(entry, dict) or b"data" not in entry or label_key not in entry:
        keys = sorted(map(repr, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise ValueError(f"{str(path)!r} is not a CIFAR python file: needs keys b'data' and {label_key!r}, got {keys}")
    data, labels = entry[b"data"], entry[label_key]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        described = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{str(path)!r}: b'data' must be a uint8 array of shape (n, 3072), got {described}")
    if isinstance(labels, np.ndarray):
        ok = labels.ndim == 1 and labels.dtype.kind in "iu"
    else:
        ok = isinstance(labels, list) and all(type(v) is int for v in labels)
    if not ok:
        raise ValueError(f"{str(path)!r}: {label_key!r} must be a list of integers (or a 1-D integer array)")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) != len(data):
        raise ValueError(f"{str(path)!r}: {len(data)} images but {len(labels)} labels")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_files(folder: Path, names: list[str], label_key: bytes) -> TensorData:
    xs, ys = [], []
    for name in names:
        x, y = _read_cifar_file(folder / name, label_key)
        xs.append(x)
        ys.append(y)
    return TensorData(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))


def _cifar(name: str, data_dir: str) -> DatasetBundle:
    sub, train_files, test_files, label_key, classes = _CIFAR_LAYOUT[name]
    expected = (
        f"{name} expects data_dir to hold the python-pickle files of the official archive "
        f"({', '.join(train_files + test_files)}), directly or in {sub}/"
    )
    if not data_dir:
        raise ValueError(f"dataset {name!r} needs data_dir; {expected}")
    root = Path(data_dir)
    folder = next((d for d in (root, root / sub) if all((d / f).is_file() for f in train_files + test_files)), None)
    if folder is None:
        missing = [f for f in train_files + test_files if not (root / f).is_file() and not (root / sub / f).is_file()]
        raise FileNotFoundError(f"{data_dir!r}: missing {', '.join(missing)}; {expected}. Nothing is downloaded.")
    train = _read_cifar_files(folder, train_files, label_key)
    test = _read_cifar_files(folder, test_files, label_key)
    mean, std = _CIFAR_STATS[name]
    for part in (train, test):
        part.mean, part.std = mean, std
    return DatasetBundle(name, train, test, (3, 32, 32), classes, augment="cifar")


_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")


class ImageFolder(torch.utils.data.Dataset):
    """``root/<class>/<image>``; training: random resized crop + flip, else resize + center crop.

    Images are decoded with Pillow (the ``plot`` extra installs it) into normalized float
    tensors of shape ``(3, size, size)``. Randomness comes from torch's generator of the
    DataLoader worker (seeded by torch from the run's generator).
    """

    def __init__(self, root: Path, *, train: bool, size: int = 224, resize: int = 256):
        self.classes = sorted(d.name for d in root.iterdir() if d.is_dir())
        self.samples = [
            (str(p), i)
            for i, c in enumerate(self.classes)
            for p in sorted((root / c).iterdir())
            if p.suffix.lower() in _IMAGE_EXTENSIONS
        ]
        self.train, self.size, self.resize = train, size, resize

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[i]
        with Image.open(path) as img:
            img = img.convert("RGB")
            if self.train:
                img = self._random_resized_crop(img)
            else:
                w, h = img.size
                scale = self.resize / min(w, h)
                img = img.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.BILINEAR)
                w, h = img.size
                left, top = (w - self.size) // 2, (h - self.size) // 2
                img = img.crop((left, top, left + self.size, top + self.size))
            x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)
        if self.train and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return as_float(x[None], *_IMAGENET_STATS)[0], label

    def _random_resized_crop(self, img):
        """Area in [0.08, 1], aspect ratio in [3/4, 4/3] (log-uniform); whole image if 10 tries fail."""
        from PIL import Image

        w, h = img.size
        for _ in range(10):
            area = w * h * float(torch.empty(()).uniform_(0.08, 1.0))
            ratio = float(torch.empty(()).uniform_(np.log(3 / 4), np.log(4 / 3)).exp())
            cw, ch = round((area * ratio) ** 0.5), round((area / ratio) ** 0.5)
            if 0 < cw <= w and 0 < ch <= h:
                left = int(torch.randint(0, w - cw + 1, ()))
                top = int(torch.randint(0, h - ch + 1, ()))
                return img.resize((self.size, self.size), Image.BILINEAR, box=(left, top, left + cw, top + ch))
        return img.resize((self.size, self.size), Image.BILINEAR)


def _imagefolder(data_dir: str) -> DatasetBundle:
    expected = (
        "imagefolder expects data_dir/train/<class>/<image> and data_dir/val/<class>/<image> "
        "(ImageNet layout; one folder per class, the same class folders in both)"
    )
    if not data_dir:
        raise ValueError(f"dataset 'imagefolder' needs data_dir; {expected}")
    root = Path(data_dir)
    for part in ("train", "val"):
        if not (root / part).is_dir():
            raise FileNotFoundError(f"{str(root / part)!r} is not a directory; {expected}. Nothing is downloaded.")
    train, test = ImageFolder(root / "train", train=True), ImageFolder(root / "val", train=False)
    if not train.classes or len(train) == 0:
        raise FileNotFoundError(f"{str(root / 'train')!r} holds no class folders with images; {expected}")
    if train.classes != test.classes:
        raise ValueError(f"class folders of train/ and val/ differ in {data_dir!r}; {expected}")
    return DatasetBundle("imagefolder", train, test, (3, 224, 224), len(train.classes), augment="imagenet")


class TokenWindows(TensorData):
    """Windows of ``context`` tokens of one stream (``x``) and their next tokens (``y``), both
    ``(n, context)`` int64 views of ``tokens`` (no copy); batches gather only their rows."""

    def __init__(self, tokens: Tensor, context: int, stride: int | None = None):
        self.tokens, self.context, self.stride = tokens, int(context), int(stride or context)
        if len(tokens) < self.context + 1:
            raise ValueError(f"{len(tokens)} tokens hold no window of context={self.context} plus its next token")
        super().__init__(
            tokens[:-1].unfold(0, self.context, self.stride), tokens[1:].unfold(0, self.context, self.stride)
        )

    def to(self, device) -> TokenWindows:
        return TokenWindows(self.tokens.to(device), self.context, self.stride)


def text_splits(
    text: str, context: int, *, source: str = "the text"
) -> tuple[TokenWindows, TokenWindows, TokenWindows, CharVocab]:
    """``(train, val, test, vocab)`` of ``text``: contiguous 90/5/5 parts as windows, the
    vocabulary from the training part."""
    if not isinstance(context, int) or isinstance(context, bool) or context < 1:
        raise ValueError(f"context={context!r} must be an integer >= 1")
    need = min_characters(context)
    if len(text) < need:
        raise ValueError(f"{source} holds {len(text)} characters; context={context} needs at least {need}")
    n_train = int(len(text) * TEXT_SPLITS[0])
    n_val = int(len(text) * TEXT_SPLITS[1])
    parts = text[:n_train], text[n_train : n_train + n_val], text[n_train + n_val :]
    vocab = CharVocab.from_text(parts[0])
    train, val, test = (TokenWindows(vocab.encode(part), context) for part in parts)
    return train, val, test, vocab


def _text(data_dir: str, context: int) -> DatasetBundle:

    if data_dir:
        source, text = repr(data_dir), read_text_file(data_dir, context)
    else:
        source, text = "pydoc_data.topics", builtin_text()
    train, val, test, vocab = text_splits(text, context, source=source)
    return DatasetBundle("text", train, test, (context,), len(vocab), val=val, vocab=vocab, targets="next-token")


def make_mnist1d(num_samples: int = 5000) -> DatasetBundle:
    """MNIST-1D generated locally with ``num_samples`` samples (80% train, 20% test), the other
    generator arguments standard (``num_samples=5000`` is the ``mnist1d`` dataset)."""
    if not (isinstance(num_samples, int) and num_samples >= 10):
        raise ValueError(f"num_samples={num_samples!r} must be an integer >= 10 (one per class)")
    return _mnist1d(num_samples)


def load_dataset(name: str, data_dir: str = "", *, context: int = 128) -> DatasetBundle:
    """The dataset ``name`` (one of :data:`DATASETS`) with its test split; ``context``: the
    tokens per sample of ``text``.

    Example:
        >>> from rewa.experiments.data import load_dataset
        >>> bundle = load_dataset("digits")
        >>> len(bundle.train), len(bundle.test), bundle.input_shape, bundle.num_classes
        (1347, 450, (1, 8, 8), 10)
    """
    if name == "digits":
        return _digits()
    if name == "mnist1d":
        return _mnist1d()
    if name in _CIFAR_LAYOUT:
        return _cifar(name, os.path.expanduser(data_dir))
    if name == "imagefolder":
        return _imagefolder(os.path.expanduser(data_dir))
    if name == "text":
        return _text(data_dir, context)
    raise ValueError(f"dataset={name!r} must be one of {DATASETS}")


def from_dataset(dataset, name: str = "user") -> object:
    """A ``TensorDataset`` (or our ``TensorData``) becomes ``TensorData``; other datasets pass through."""
    if isinstance(dataset, TensorData):
        return dataset
    if isinstance(dataset, torch.utils.data.TensorDataset):
        if len(dataset.tensors) != 2:
            raise ValueError(f"{name}: a TensorDataset must hold (inputs, labels), got {len(dataset.tensors)} tensors")
        return TensorData(*dataset.tensors)
    if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
        raise TypeError(
            f"{name} must be a map-style torch Dataset (with __getitem__ and __len__), got {type(dataset).__name__}"
        )
    return dataset


def describe(dataset) -> tuple[tuple[int, ...], int]:
    """``(input_shape, num_classes)`` read from the data (labels ``0..C-1``)."""
    if isinstance(dataset, TensorData):
        return tuple(dataset.x.shape[1:]), int(dataset.y.max()) + 1
    x, _ = dataset[0]
    labels = getattr(dataset, "targets", None)
    if labels is None:
        labels = [int(dataset[i][1]) for i in range(len(dataset))]
    return tuple(torch.as_tensor(x).shape), int(max(labels)) + 1
