"""The conditioned CNN blocks of the gan and vae: FiLM, up-sampling and down-sampling, values checked."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from kaiga.nn.blocks import DownBlock, FiLM, UpBlock, _groups


def _identity_(conv: torch.nn.Conv2d, at: tuple[int, int]) -> None:
    """Make `conv` copy channel c to channel c, reading the kernel position `at` only."""
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        for c in range(conv.out_channels):
            conv.weight[c, c, at[0], at[1]] = 1.0


@pytest.mark.parametrize(("channels", "groups"), [(16, 8), (12, 4), (6, 2), (3, 1)])
def test_group_norm_uses_the_largest_of_8_4_2_1_that_divides(channels, groups):
    assert _groups(channels) == groups


def test_film_starts_as_plain_normalisation():
    x, cond = torch.randn(2, 8, 4, 4, generator=torch.Generator().manual_seed(0)), torch.randn(2, 5)
    torch.testing.assert_close(FiLM(8, cond_dim=5)(x, cond), F.group_norm(x, 8))


def test_film_scales_and_shifts_each_channel_from_the_condition():
    film = FiLM(2, cond_dim=1)
    with torch.no_grad():  # scale = cond * [1, 2], shift = [0.5, -1]
        film.to_scale_shift.weight.copy_(torch.tensor([[1.0], [2.0], [0.0], [0.0]]))
        film.to_scale_shift.bias.copy_(torch.tensor([0.0, 0.0, 0.5, -1.0]))
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 2.0]]]])  # [1, 2, 1, 2]: each channel normalises to [-1, 1]
    out = film(x, torch.tensor([[1.0]]))
    normed = torch.tensor([-1.0, 1.0]) * (1 / (1 + 1e-5)) ** 0.5  # GroupNorm's eps
    torch.testing.assert_close(out[0, 0, 0], normed * 2 + 0.5)  # (1 + 1) scale
    torch.testing.assert_close(out[0, 1, 0], normed * 3 - 1.0)  # (1 + 2) scale


def test_up_block_doubles_the_size_by_nearest_neighbours():
    up = UpBlock(2, 2, cond_dim=3)
    _identity_(up.convs[0], at=(1, 1))
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[-1.0, 0.0], [0.0, 5.0]]]])  # [1, 2, 2, 2]
    out = up(x, torch.zeros(1, 3))
    assert out.shape == (1, 2, 4, 4)
    expected = F.leaky_relu(F.group_norm(x.repeat_interleave(2, 2).repeat_interleave(2, 3), 2), 0.2)
    torch.testing.assert_close(out, expected)


def test_up_block_stacks_its_convolutions():
    up = UpBlock(8, 4, cond_dim=6, convs=3)
    assert len(up.convs) == len(up.films) == 3
    assert [c.in_channels for c in up.convs] == [8, 4, 4]
    assert up(torch.randn(2, 8, 3, 5), torch.randn(2, 6)).shape == (2, 4, 6, 10)


def test_down_block_keeps_every_second_pixel_through_its_stride():
    down = DownBlock(1, 1)
    _identity_(down.conv, at=(1, 1))
    _identity_(down.down, at=(1, 1))  # 4×4 kernel, padding 1: position (1, 1) reads pixel (2i, 2j)
    x = torch.arange(-8.0, 8.0).view(1, 1, 4, 4)
    expected = F.leaky_relu(F.leaky_relu(x, 0.2)[..., ::2, ::2], 0.2)
    torch.testing.assert_close(down(x), expected)


def test_down_block_halves_odd_and_even_sizes_and_may_normalise():
    assert DownBlock(4, 8)(torch.zeros(2, 4, 8, 8)).shape == (2, 8, 4, 4)
    assert DownBlock(4, 8)(torch.zeros(2, 4, 7, 9)).shape == (2, 8, 3, 4)
    assert isinstance(DownBlock(4, 8, norm=True).norm, torch.nn.GroupNorm)
    assert isinstance(DownBlock(4, 8).norm, torch.nn.Identity)
