"""Feature-domain augmentation: noise and masks drawn per sample in the loader, applied on the device.

The authors add Gaussian noise to the waveform before WavLM; a store holds features, so the
augmentation happens in the feature domain instead (docs/training.md explains the choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch


def _span(rng: np.random.Generator, size: int, frac: float) -> tuple[int, int]:
    """``(start, width)`` of one mask: width uniform in ``[0, frac * size]``, start anywhere it fits."""
    width = int(rng.integers(0, int(frac * size) + 1))
    return int(rng.integers(0, size - width + 1)), width


@dataclass(frozen=True)
class Augment:
    """Feature-domain augmentation of a batch of crops ``(B, channels, layers, T, dim)``.

    - Gaussian noise with probability ``noise_p``: mean drawn in [-0.03, 0.03] and std in [0.05, 0.1]
      (the authors' waveform-noise ranges), scaled by each feature's std over the crop.
    - Up to ``time_masks`` time masks and ``feature_masks`` feature masks (SpecAugment), each at most
      the given fraction of the axis, filled with the crop's per-feature mean (which the model's
      instance normalisation maps to about zero).
    - With probability ``time_flip``, the crop played backwards (MusicNeXt's horizontal flip of the
      spectrogram image), before the noise and masks. Drawn only when ``time_flip > 0``, so the draws of
      every other setting stay as they were.

    It runs in two halves. ``draw`` picks one sample's random choices in the loader (a few numbers,
    from the sample's own generator); ``apply`` does the arithmetic on the whole batch where the model
    runs, after the copy to the GPU. Drawing noise for every element of a crop costs a CPU ~15-30 ms
    (13 x 300 x 768 values), which capped a loader worker at ~30 crops/s, too few for a GPU; there it
    runs on the device, beside the model. Each sample's noise comes from a generator seeded by its own draw, so a batch is
    the same whatever the worker count or the order it was loaded in, and a resumed run stays exact
    (on the same device: CPU and CUDA generators give different streams).

    >>> aug = Augment(noise_p=1.0)
    >>> plans = [aug.draw(np.random.default_rng(i), frames=50, dim=8) for i in range(2)]
    >>> x = torch.randn(2, 1, 3, 50, 8)
    >>> out = aug.apply(x, stack_plans(plans))
    >>> out.shape, bool(torch.equal(out, aug.apply(x, stack_plans(plans)))), bool(torch.equal(out, x))
    (torch.Size([2, 1, 3, 50, 8]), True, False)
    """

    noise_p: float = 0.7
    time_masks: int = 2
    time_mask_frac: float = 0.1
    feature_masks: int = 2
    feature_mask_frac: float = 0.1
    time_flip: float = 0.0

    def draw(self, rng: np.random.Generator, *, frames: int, dim: int) -> dict[str, np.ndarray]:
        """One sample's random choices: whether and how much noise, its seed, and the mask spans."""
        noise = rng.random() < self.noise_p
        mu, sigma = rng.uniform(-0.03, 0.03), rng.uniform(0.05, 0.1)
        seed = int(rng.integers(0, 2**62))
        time = [_span(rng, frames, self.time_mask_frac) for _ in range(self.time_masks)]
        feature = [_span(rng, dim, self.feature_mask_frac) for _ in range(self.feature_masks)]
        flip = {"flip": np.array(rng.random() < self.time_flip)} if self.time_flip > 0 else {}
        return {
            **flip,
            "noise": np.array(noise),
            "mu": np.array(mu, dtype=np.float32),
            "sigma": np.array(sigma, dtype=np.float32),
            "seed": np.array(seed, dtype=np.int64),
            "time": np.array(time, dtype=np.int64).reshape(-1, 2),
            "feature": np.array(feature, dtype=np.int64).reshape(-1, 2),
        }

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch ``x`` (float, on any device) augmented as ``plan`` (``stack_plans`` of the draws,
        on the CPU) says; returns a new tensor and leaves ``x`` as it was."""
        if "flip" in plan and bool(plan["flip"].any()):
            flip = plan["flip"].to(x.device, non_blocking=True)[:, None, None, None, None]
            x = torch.where(flip, x.flip(3), x)
        mean = x.mean(dim=3, keepdim=True)  # (B, C, L, 1, D), before the noise
        noisy = [b for b, on in enumerate(plan["noise"].tolist()) if on]
        if noisy:
            std = (x - mean).square_().mean(dim=3, keepdim=True).sqrt_()  # 5x faster than x.std over a middle axis
            x = x.clone()
            for b in noisy:
                g = torch.Generator(device=x.device).manual_seed(int(plan["seed"][b]))
                z = torch.randn(x.shape[1:], generator=g, device=x.device, dtype=x.dtype)
                x[b] += z.mul_(float(plan["sigma"][b])).add_(float(plan["mu"][b])).mul_(std[b])
        masked = (
            _spans_mask(plan["time"], x.shape[3])[:, None, None, :, None]
            | _spans_mask(plan["feature"], x.shape[4])[:, None, None, None, :]
        )
        return torch.where(masked.to(x.device, non_blocking=True), mean, x)


@dataclass(frozen=True)
class PartAugment:
    """Each part of a frame augmented on its own: ``parts`` are ``(start, stop, Augment)`` over the
    feature axis, in order, covering it. A ``wave+mfcc`` frame (1,024 samples, then 20 MFCC) gets the
    waveform recipe on its samples and the MFCC recipe on its coefficients, as MixNet's authors augment
    each input (NNET1's noise and time mask on the audio, NNET2's masks on the MFCC), instead of one
    feature mask drawn over all 1,044 values, which nearly always lands in the samples.

    >>> aug = PartAugment(((0, 6, Augment(noise_p=0, time_masks=0, feature_masks=0)),
    ...                    (6, 8, Augment(noise_p=0, time_masks=0, feature_masks=1, feature_mask_frac=1.0))))
    >>> plan = stack_plans([aug.draw(np.random.default_rng(3), frames=5, dim=8)])
    >>> x = torch.arange(40.0).reshape(1, 1, 1, 5, 8)
    >>> changed = (aug.apply(x, plan) != x)[0, 0, 0].any(0).tolist()
    >>> changed[:6], any(changed[6:])
    ([False, False, False, False, False, False], True)
    """

    parts: tuple[tuple[int, int, Augment], ...]

    def draw(self, rng: np.random.Generator, *, frames: int, dim: int) -> dict[str, np.ndarray]:
        if self.parts[-1][1] != dim:
            raise ValueError(f"the parts {[(a, b) for a, b, _ in self.parts]} do not cover a frame of {dim} values")
        return {
            f"{k}.{key}": v
            for k, (start, stop, aug) in enumerate(self.parts)
            for key, v in aug.draw(rng, frames=frames, dim=stop - start).items()
        }

    def apply(self, x: torch.Tensor, plan: dict[str, torch.Tensor]) -> torch.Tensor:
        out = []
        for k, (start, stop, aug) in enumerate(self.parts):
            mine = {key.split(".", 1)[1]: v for key, v in plan.items() if key.split(".", 1)[0] == str(k)}
            out.append(aug.apply(x[..., start:stop], mine))
        return torch.cat(out, dim=-1)


def for_run(cfg, feature: str, dim: int) -> Augment | PartAugment | None:
    """The training augmentation of a run (``cfg``: its ``TrainConfig``) on a store of ``feature``
    frames of ``dim`` values: None without ``--augment``; on a ``wave+mfcc`` store, with the recipe's
    ``wave_augment`` set (the NNET presets), that on the waveform half and the options on the MFCC
    half; else the options over the whole frame."""
    if not cfg.augment:
        return None
    main = Augment(
        cfg.noise_p,
        cfg.time_masks,
        cfg.time_mask_frac,
        cfg.feature_masks,
        cfg.feature_mask_frac,
        time_flip=cfg.time_flip,
    )
    if feature not in ("wave+mfcc", "wave+mfcc-window") or cfg.wave_augment is None:
        return main
    samples = dim - WAVE_MFCC_COEFFICIENTS
    return PartAugment(((0, samples, Augment(**cfg.wave_augment)), (samples, dim, main)))


#: the MFCC coefficients at the end of each ``wave+mfcc`` frame (extract/engines/wavemfcc.py)
WAVE_MFCC_COEFFICIENTS = 20


def _spans_mask(spans: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, size)`` bool: inside any of each sample's ``(start, width)`` spans ``(B, M, 2)``.

    >>> _spans_mask(torch.tensor([[[1, 2], [4, 0]]]), 6).int().tolist()
    [[0, 1, 1, 0, 0, 0]]
    """
    at = torch.arange(size)
    start, width = spans[..., :1], spans[..., 1:]
    return ((at >= start) & (at < start + width)).any(dim=1)


def stack_plans(plans: Sequence[dict[str, np.ndarray]]) -> dict[str, torch.Tensor]:
    """Per-sample ``Augment.draw`` results as one batch of tensors."""
    return {k: torch.from_numpy(np.stack([p[k] for p in plans])) for k in plans[0]}
