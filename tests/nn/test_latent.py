"""Spherical interpolation between latents (the latent walk of `kaiga explain` for gan and vae)."""

from __future__ import annotations

import math

import torch

from kaiga.nn.latent import slerp


def test_the_ends_are_the_two_latents():
    a, b = torch.tensor([3.0, 0.0, 1.0]), torch.tensor([-1.0, 2.0, 0.5])
    ends = slerp(a, b, torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(ends, torch.stack([a, b]))


def test_points_move_at_a_constant_angle_on_the_circle():
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])  # a quarter circle apart
    points = slerp(a, b, torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]))
    expected = torch.tensor([[math.cos(t * math.pi / 2), math.sin(t * math.pi / 2)] for t in (0, 1 / 3, 2 / 3, 1)])
    torch.testing.assert_close(points, expected)


def test_parallel_latents_are_interpolated_linearly():
    a = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(slerp(a, 3 * a, torch.tensor([0.5])), torch.tensor([[2.0, 4.0]]))


def test_gaussian_latents_keep_a_typical_norm_midway_where_lerp_shrinks():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(512, generator=g), torch.randn(512, generator=g)
    mid = slerp(a, b, torch.tensor([0.5]))[0]
    typical = (a.norm() + b.norm()) / 2
    assert abs(mid.norm() / typical - 1) < 0.05
    assert abs(torch.lerp(a, b, 0.5).norm() / typical - 1 / math.sqrt(2)) < 0.05  # nearly orthogonal: 1/√2
