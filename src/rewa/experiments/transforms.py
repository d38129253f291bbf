"""ImageNet-style input transforms on whole batches of tensors (no torchvision, no Pillow).

The paper code trains CIFAR-10 at 224 pixels with the ImageNet pipeline of torchvision:
``RandomResizedCrop(224)`` and ``RandomHorizontalFlip()`` for training, ``Resize(256)`` and
``CenterCrop(224)`` for evaluation. Here the same maps run on a batch ``(N, C, H, W)`` on its
own device, with no per-sample Python work and no host synchronisation:

* :func:`random_resized_crop`: each image gets its own crop box, drawn as torchvision draws
  it (area in ``scale`` of the image, log-uniform aspect ratio in ``ratio``, ten tries, else
  the whole image clamped to ``ratio``), and its own flip coin; the box is cut out and
  resampled to ``size x size`` as ``interpolate(mode="bilinear", align_corners=False)``
  resamples it (gathers along each axis, the box's own borders clamped). No antialiasing:
  the crops of 32-pixel images are always enlarged.
* :func:`resize_center_crop`: the shorter side resized to ``resize`` (``interpolate``,
  bilinear), then the central ``size x size``.

Both are linear in the pixels with weights that sum to one, so they commute with the
per-channel normalization: applying them to normalized floats gives the normalized result of
transforming the raw image (up to float rounding; torchvision rounds the resized image of a
PIL input to uint8, which this does not).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["random_resized_crop", "resize_center_crop", "crop_boxes"]

_TRIES = 10


def _check_batch(x: Tensor, what: str) -> None:
    if x.dim() != 4:
        raise ValueError(f"{what} needs a batch of images (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{what} needs floating-point images (scale uint8 first), got {x.dtype}")


def _check_size(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be an integer >= 1")
    return value


def crop_boxes(
    n: int,
    height: int,
    width: int,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    device=None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(top, left, h, w)`` (int64, one per image) of ``RandomResizedCrop``'s boxes.

    Per image: up to ten tries of an area ``U(scale) * H * W`` and an aspect ratio
    ``exp(U(log ratio))``, ``w = round(sqrt(area * aspect))``, ``h = round(sqrt(area / aspect))``;
    the first try that fits gets an offset uniform over the positions; with none, the whole
    image cut to the nearest aspect ratio in ``ratio``, centred. All tries are drawn at once.
    """
    if not (0 < scale[0] <= scale[1] <= 1):
        raise ValueError(f"scale={scale!r} must satisfy 0 < scale[0] <= scale[1] <= 1")
    if not (0 < ratio[0] <= ratio[1]):
        raise ValueError(f"ratio={ratio!r} must satisfy 0 < ratio[0] <= ratio[1]")
    device = generator.device if device is None else device
    area = float(height * width)
    u = torch.rand(n, _TRIES, generator=generator, device=device)
    target = area * (scale[0] + (scale[1] - scale[0]) * u)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * torch.rand(n, _TRIES, generator=generator, device=device))
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(1, keepdim=True)  # the first try that fits (0 if none does)
    found = fits.any(1)
    w = w.gather(1, first)[:, 0]
    h = h.gather(1, first)[:, 0]
    # torchvision's fallback: the whole image, cut to the nearest allowed aspect ratio
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw)).long()
    h = torch.where(found, h, torch.full_like(h, fh)).long()
    ut = torch.rand(n, generator=generator, device=device)
    ul = torch.rand(n, generator=generator, device=device)
    top = torch.floor(ut * (height - h + 1)).long().clamp_max(height - h)
    left = torch.floor(ul * (width - w + 1)).long().clamp_max(width - w)
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return top, left, h, w


def random_resized_crop(
    x: Tensor,
    size: int,
    generator: torch.Generator,
    *,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    flip: bool = True,
) -> Tensor:
    """``RandomResizedCrop(size)`` (and ``RandomHorizontalFlip()`` if ``flip``) of each image of
    the float batch ``x``; randomness from ``generator`` (on ``x``'s device)."""
    _check_batch(x, "random_resized_crop")
    size = _check_size("size", size)
    n, c, height, width = x.shape
    top, left, h, w = crop_boxes(n, height, width, generator, scale=scale, ratio=ratio, device=x.device)
    # crop then resize, as torchvision does: each box resampled bilinearly on its own, its
    # borders clamped (not its neighbours' pixels), one axis after the other
    x0, x1, fx = _taps(left, w, size, x.dtype)  # (N, S) columns
    y0, y1, fy = _taps(top, h, size, x.dtype)  # (N, S) rows
    cols = lambda i: i[:, None, None, :].expand(n, c, height, size)  # noqa: E731
    x = x.gather(3, cols(x0)) * (1 - fx)[:, None, None, :] + x.gather(3, cols(x1)) * fx[:, None, None, :]
    rows = lambda i: i[:, None, :, None].expand(n, c, size, size)  # noqa: E731
    out = x.gather(2, rows(y0)) * (1 - fy)[:, None, :, None] + x.gather(2, rows(y1)) * fy[:, None, :, None]
    if flip:
        coin = torch.rand(n, generator=generator, device=x.device) < 0.5
        out = torch.where(coin[:, None, None, None], out.flip(-1), out)
    return out


def _taps(start: Tensor, length: Tensor, size: int, dtype) -> tuple[Tensor, Tensor, Tensor]:
    """Source indices and weights of ``interpolate(mode="bilinear", align_corners=False)`` from a
    span ``[start, start + length)`` to ``size`` samples, per image: ``(i0, i1, frac)``."""
    k = torch.arange(size, device=start.device, dtype=dtype)
    span = length.to(dtype)[:, None]
    src = ((k[None, :] + 0.5) * span / size - 0.5).clamp_min(0)
    i0 = torch.minimum(src.floor(), span - 1)
    frac = (src - i0).clamp(0, 1)
    i1 = torch.minimum(i0 + 1, span - 1)
    base = start[:, None]
    return base + i0.long(), base + i1.long(), frac


def resize_center_crop(x: Tensor, resize: int, size: int) -> Tensor:
    """``Resize(resize)`` (the shorter side; bilinear) then ``CenterCrop(size)`` of a float batch."""
    _check_batch(x, "resize_center_crop")
    resize, size = _check_size("resize", resize), _check_size("size", size)
    if size > resize:
        raise ValueError(f"size={size} must be <= resize={resize} (the crop is cut from the resized image)")
    height, width = x.shape[-2:]
    if height <= width:
        new_h, new_w = resize, int(resize * width / height)
    else:
        new_h, new_w = int(resize * height / width), resize
    if (new_h, new_w) != (height, width):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=True)
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    return x[..., top : top + size, left : left + size]
