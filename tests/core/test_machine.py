"""The one check of listed GPU ids and the one parser of id lists, shared by both command lines."""

from __future__ import annotations

import pytest

from mrnet.core import machine
from mrnet.core.cli import parse_ints
from mrnet.core.errors import UserError


@pytest.mark.parametrize(
    "count, ids, message",
    [
        (0, [0], "--gpus 0: this machine has no CUDA device that PyTorch can use. FIX"),
        (
            2,
            [0, 2, 3],
            "--gpus 0: this machine has 2 CUDA device(s), numbered 0 to 1, so GPU(s) [2, 3] do not exist. FIX",
        ),
    ],
)
def test_gpu_ids_that_do_not_exist_are_named_with_the_fix(monkeypatch, count, ids, message):
    monkeypatch.setattr(machine, "cuda_devices", lambda: count)
    with pytest.raises(UserError) as err:
        machine.check_gpu_ids(ids, given="--gpus 0", fix="FIX")
    assert str(err.value) == message


def test_existing_gpu_ids_and_none_pass(monkeypatch):
    monkeypatch.setattr(machine, "cuda_devices", lambda: 2)
    machine.check_gpu_ids([0, 1], given="--gpus 0,1", fix="")
    machine.check_gpu_ids((), given="--gpus", fix="")


def test_a_cuda_device_is_checked_by_the_same_rule(monkeypatch):
    import torch

    monkeypatch.setattr(machine, "cuda_devices", lambda: 1)
    with pytest.raises(
        UserError, match=r"--device cuda:1: this machine has 1 CUDA device\(s\), numbered 0 to 0.*Use --device cpu"
    ):
        machine.pick_device("cuda:1")
    assert machine.pick_device("cpu") == torch.device("cpu")


def test_id_lists_parse_ranges_and_name_the_option_when_they_do_not():
    assert parse_ints("3,0-1", "--gpus") == (0, 1, 3) and parse_ints(" all ", "--layers", all_is_none=True) is None
    with pytest.raises(UserError, match=r"--gpus 'a,b': give numbers like 0,1"):
        parse_ints("a,b", "--gpus")
