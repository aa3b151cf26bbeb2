"""Feature-domain augmentation: drawn per sample in the loader, applied on the training device."""

from __future__ import annotations

import numpy as np
import torch

from mrnet.train.augment import Augment, stack_plans
from mrnet.train.loader import collate
from mrnet.train.loop import train_step
from tests.train.util import dataset


def augmented(ds, items):
    """The float32 batch a training step sees for ``items`` (collated, augmented on the CPU)."""
    x, _, plan = collate([ds[i] for i in items])
    return ds.augment.apply(x.float(), plan)


def test_augmentation_keeps_shape_changes_values_and_is_seeded(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    plain, _ = dataset(wavlm_store, crop=80)
    a, b = augmented(ds, [(0, 1)]), augmented(ds, [(0, 1)])
    c = torch.from_numpy(plain[(0, 1)][0]).float()[None]
    assert a.shape == c.shape and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_a_sample_is_augmented_the_same_whatever_batch_it_is_in(wavlm_store):
    """Noise is seeded per sample, so batch composition and order (worker count, resume) change nothing."""
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    alone = augmented(ds, [(0, 3)])[0]
    mixed = augmented(ds, [(0, 5), (0, 3), (0, 1)])[1]
    assert torch.equal(alone, mixed)
    assert not torch.equal(augmented(ds, [(1, 3)])[0], alone)  # another epoch, another draw


def test_augmentation_leaves_the_loaders_batch_untouched(wavlm_store):
    ds, _ = dataset(wavlm_store, crop=80, augment=Augment(noise_p=1.0))
    x, _, plan = collate([ds[(0, i)] for i in range(3)])
    x32 = x.float()
    before = x32.clone()
    ds.augment.apply(x32, plan)
    assert torch.equal(x32, before)  # an in-memory batch reused across steps stays the same


def test_noise_scales_with_each_features_spread():
    aug = Augment(noise_p=1.0, time_masks=0, feature_masks=0)
    x = torch.randn(1, 1, 2, 4000, 3) * torch.tensor([0.1, 1.0, 10.0])
    out = aug.apply(x, stack_plans([aug.draw(np.random.default_rng(0), frames=4000, dim=3)]))
    ratio = (out - x).std(dim=3) / x.std(dim=3)  # noise std / feature std: sigma, the same for every feature
    assert torch.allclose(ratio, ratio[..., :1].expand_as(ratio), rtol=0.1)
    assert 0.04 < float(ratio.mean()) < 0.11


def test_feature_mask_fills_with_the_crop_mean():
    aug = Augment(noise_p=0.0, time_masks=0, feature_masks=1, feature_mask_frac=1.0)
    x = torch.arange(2 * 10 * 4, dtype=torch.float32).reshape(1, 1, 2, 10, 4)
    plan = stack_plans([aug.draw(np.random.default_rng(1), frames=10, dim=4)])
    start, width = plan["feature"][0, 0].tolist()
    out = aug.apply(x, plan)
    changed = torch.where((out != x).any(dim=(0, 1, 2, 3)))[0].tolist()
    assert width > 0 and changed == list(range(start, start + width))
    mean = x.mean(dim=3, keepdim=True).expand_as(x)
    assert torch.equal(out[..., changed], mean[..., changed])


def test_time_masks_fill_whole_frames():
    aug = Augment(noise_p=0.0, time_masks=2, time_mask_frac=0.3, feature_masks=0)
    x = torch.randn(1, 2, 3, 40, 5)
    plan = stack_plans([aug.draw(np.random.default_rng(4), frames=40, dim=5)])
    out = aug.apply(x, plan)
    frames = {t for s, w in plan["time"][0].tolist() for t in range(s, s + w)}
    assert frames
    changed = set(torch.where((out != x).any(dim=(0, 1, 2, 4)))[0].tolist())
    assert changed == frames


def test_train_step_takes_float16_batches_and_augments_on_its_device(wavlm_store):
    """The loop's own step: a float16 batch from the loader, converted and augmented where the model runs."""
    ds, _ = dataset(wavlm_store, crop=40, augment=Augment(noise_p=1.0))
    x, y, plan = collate([ds[(0, i)] for i in range(4)])
    assert x.dtype == torch.float16
    seen = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(x[0].numel(), 3))
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    train_step(model, opt, None, x, y % 3, torch.device("cpu"), False, ds.augment, plan)
    assert seen[0].dtype == torch.float32
    assert torch.equal(seen[0], ds.augment.apply(x.float(), plan))
