import dataclasses

import pytest
import torch

from kaiga.eval import fidelity
from kaiga.eval.fidelity import FidelityScores, fidelity_scores


@pytest.fixture(autouse=True)
def _one_thread():
    """KID runs 300 matmuls of a few dozen rows; on a busy CPU each costs a scheduler slice once threads must meet."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def gaussian(n: int, dim: int, seed: int, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed)) + shift


def mixture(n: int, centres: torch.Tensor, seed: int) -> torch.Tensor:
    """n rows spread evenly over the modes at `centres` [M, D], unit noise around each."""
    noise = torch.randn(n, centres.shape[1], generator=torch.Generator().manual_seed(seed))
    return centres[torch.arange(n) % centres.shape[0]] + noise


def test_identical_sets_score_as_perfect():
    x = gaussian(300, 16, seed=0)
    s = fidelity_scores(x, x)
    assert abs(s.fid) < 1e-3 * x.var(dim=0).sum().item()  # relative to the total variance
    # The cross term of KID pairs each row with itself, so identical sets land at -O(1/N), not exactly 0;
    # a shift of half a standard deviation scores above 1.
    assert abs(s.kid_mean) < 0.1
    assert s.precision == 1.0 and s.recall == 1.0
    assert (s.n_real, s.n_fake, s.feature_dim) == (300, 300, 16)


def test_separated_gaussians_share_nothing():
    s = fidelity_scores(gaussian(300, 16, seed=0), gaussian(300, 16, seed=1, shift=10.0))
    assert s.fid == pytest.approx(16 * 10.0**2, rel=0.05)  # |mean shift|^2 dominates
    assert s.kid_mean > 1.0
    assert s.precision == 0.0 and s.recall == 0.0


def test_mode_collapse_keeps_precision_and_halves_recall():
    directions = gaussian(4, 8, seed=0)
    centres = 20.0 * directions / directions.norm(dim=1, keepdim=True)  # 4 modes, far apart
    real = mixture(400, centres, seed=1)
    full = fidelity_scores(real, mixture(400, centres, seed=2), kid_subset_size=50)  # same distribution: the baseline
    collapsed = fidelity_scores(real, mixture(400, centres[:2], seed=3), kid_subset_size=50)  # half of the modes
    assert full.precision > 0.75 and full.recall > 0.75
    assert collapsed.precision > 0.75
    assert 0.35 < collapsed.recall / full.recall < 0.65
    assert collapsed.fid > 100 * full.fid


def test_fid_is_symmetric_and_grows_with_a_mean_shift():
    real = gaussian(200, 8, seed=0)
    fids = [fidelity_scores(real, gaussian(200, 8, seed=1, shift=shift)).fid for shift in (0.0, 0.25, 0.5, 1.0, 2.0)]
    assert fids == sorted(fids) and fids[0] < fids[1]
    fake = gaussian(200, 8, seed=1, shift=0.5)
    assert fidelity_scores(fake, real).fid == pytest.approx(fidelity_scores(real, fake).fid, rel=1e-6)


def test_kid_subset_size_adapts_to_small_sets():
    real, fake = gaussian(40, 4, seed=0), gaussian(30, 4, seed=1)
    default = fidelity_scores(real, fake)
    assert default.kid_subset_size == 15  # half the smaller set: subsets differ, so their spread means something
    assert default.kid_std > 0
    assert fidelity_scores(real, fake, kid_subset_size=10).kid_subset_size == 10
    assert fidelity_scores(real, fake, kid_subset_size=5000).kid_subset_size == 30


def test_kid_subsets_follow_the_seed_and_leave_the_global_rng_alone():
    real, fake = gaussian(60, 4, seed=0), gaussian(60, 4, seed=1, shift=0.3)
    rng_state = torch.get_rng_state()
    a = fidelity_scores(real, fake, kid_subset_size=20, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_state)
    assert fidelity_scores(real, fake, kid_subset_size=20, seed=7) == a
    assert fidelity_scores(real, fake, kid_subset_size=20, seed=8).kid_mean != a.kid_mean


def test_blocked_distances_match_one_block(monkeypatch):
    real, fake = gaussian(50, 6, seed=0), gaussian(45, 6, seed=1, shift=0.5)
    whole = fidelity_scores(real, fake)
    monkeypatch.setattr(fidelity, "_ROWS_PER_BLOCK", 7)
    blocked = fidelity_scores(real, fake)
    assert (blocked.precision, blocked.recall) == (whole.precision, whole.recall)


def test_accepts_float32_features_that_require_grad():
    real = gaussian(20, 4, seed=0).requires_grad_()
    s = fidelity_scores(real, gaussian(20, 4, seed=1))
    assert isinstance(s.fid, float) and 0.0 <= s.precision <= 1.0


def test_to_dict_lists_every_field_and_scores_are_frozen():
    s = fidelity_scores(gaussian(20, 4, seed=0), gaussian(20, 4, seed=1))
    d = s.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(FidelityScores)]
    assert FidelityScores(**d) == s
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.fid = 0.0


@pytest.mark.parametrize(
    ("real", "fake", "kwargs", "message"),
    [
        (torch.zeros(10), torch.zeros(10, 4), {}, r"real features must be \[N, D\]"),
        (torch.zeros(10, 4), torch.zeros(1, 4), {}, "fake features need at least 2 rows"),
        (torch.zeros(10, 4), torch.zeros(10, 5), {}, "same dimension D.*got 4 and 5"),
        (torch.full((10, 4), float("nan")), torch.zeros(10, 4), {}, "real features contain NaN or inf"),
        (torch.randn(10, 4), torch.randn(5, 4), {"k": 5}, r"k must be in \[1, 4\]"),
        (torch.randn(10, 4), torch.randn(10, 4), {"k": 0}, r"k must be in \[1, 9\]"),
        (torch.randn(10, 4), torch.randn(10, 4), {"kid_subset_size": 1}, "kid_subset_size must be at least 2"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(real, fake, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fidelity_scores(real, fake, **kwargs)
