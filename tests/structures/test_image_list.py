"""to_image_list pads to a common, divisible size and remembers each image's true size."""

import torch

from rcnn.structures.image_list import ImageList, to_image_list


def test_pads_to_divisible_size_and_keeps_sizes():
    a = torch.ones(3, 50, 70)
    b = torch.full((3, 64, 33), 2.0)
    batch = to_image_list([a, b], size_divisible=32)
    assert batch.tensors.shape == (2, 3, 64, 96)
    assert batch.image_sizes == [(50, 70), (64, 33)]
    assert batch.tensors[0, :, 50:].abs().sum() == 0 and batch.tensors[0, :, :50, :70].eq(1).all()
    assert batch.tensors[1, :, :, 33:].abs().sum() == 0


def test_tensor_input_and_passthrough():
    x = torch.zeros(2, 3, 40, 40)
    il = to_image_list(x)
    assert il.tensors is x and il.image_sizes == [(40, 40), (40, 40)]
    assert to_image_list(il) is il
    assert isinstance(to_image_list(x[0], size_divisible=32), ImageList)
    assert to_image_list(x[0], size_divisible=32).tensors.shape == (1, 3, 64, 64)
