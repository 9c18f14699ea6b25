"""Image fidelity from feature vectors: FID, KID and k-NN precision / recall.

Both sets are `[N, D]` feature rows, one per image, from the same readout network; this module
never sees pixels. The noise floor of a metric is the same call with two independent real sets.

- FID (Heusel et al. 2017) and KID (Binkowski et al. 2018) come from torchmetrics. Its metrics
  take a feature extractor as an `nn.Module`; we hand them the identity over feature rows, with the
  `num_features` attribute FID reads to size its running sums. FID accumulates in float64 and needs
  no scipy (the matrix square root is an eigendecomposition in torch); KID runs in the dtype it is
  fed, so features enter both as float64.
- Precision and recall (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models") are written here: torchmetrics 1.9 has no such metric. Precision
  is the share of fake rows inside the real manifold, recall the share of real rows inside the fake
  manifold; a manifold is the union of balls around its rows, each reaching that row's k-th nearest
  neighbour. Distances are taken in blocks of rows, so 10k x 10k sets stay within a few hundred MB.

Example:
    >>> import torch
    >>> x = torch.randn(64, 8, generator=torch.Generator().manual_seed(0))
    >>> scores = fidelity_scores(x, x)  # a set against itself: the best any fake set can score
    >>> abs(scores.fid) < 1e-9, scores.precision, scores.recall
    (True, 1.0, 1.0)
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

KID_SUBSETS = 100  # subsets averaged for KID, as in Binkowski et al. 2018 and torchmetrics
KID_SUBSET_SIZE = 1000  # rows per KID subset at most; never more than half the smaller set (see below)
_ROWS_PER_BLOCK = 1024  # query rows per distance block: 1024 x 10k float64 distances = 80 MB


@dataclass(frozen=True)
class FidelityScores:
    fid: float  # Fréchet distance between Gaussian fits, in squared feature units; 0 = same mean and covariance
    kid_mean: float  # unbiased squared MMD, cubic polynomial kernel, mean over subsets; can dip below 0
    kid_std: float  # its standard deviation over the subsets
    precision: float  # share of fake rows inside the real k-NN manifold, in [0, 1]
    recall: float  # share of real rows inside the fake k-NN manifold, in [0, 1]
    n_real: int
    n_fake: int
    feature_dim: int
    kid_subset_size: int  # rows per KID subset actually used: min(n_real, n_fake, requested)

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@torch.no_grad()
def fidelity_scores(
    real: torch.Tensor,  # [N_real, D] features of real images
    fake: torch.Tensor,  # [N_fake, D] features of generated images, same readout
    k: int = 3,  # neighbour that sets each manifold ball's radius; the paper's default
    kid_subset_size: int | None = None,  # None = KID_SUBSET_SIZE or half the smaller set, whichever is less
    seed: int = 0,  # draws the KID subsets; the global RNG is left untouched
) -> FidelityScores:
    """FID, KID and precision / recall of `fake` against `real`."""
    real, fake = _checked_features(real, fake)
    n_real, n_fake, dim = real.shape[0], fake.shape[0], real.shape[1]
    if not 1 <= k < min(n_real, n_fake):
        raise ValueError(f"k must be in [1, {min(n_real, n_fake) - 1}] (below the smaller set's size), got {k}")
    if kid_subset_size is not None and kid_subset_size < 2:
        raise ValueError(f"kid_subset_size must be at least 2 (or None for {KID_SUBSET_SIZE}), got {kid_subset_size}")
    # By default a subset holds at most half the smaller set: subsets as large as the set are all the
    # same rows, and the spread over them (kid_std) would be 0 however uncertain the estimate is.
    subset_size = min(n_real, n_fake, kid_subset_size or min(KID_SUBSET_SIZE, max(2, min(n_real, n_fake) // 2)))
    kid_mean, kid_std = _kid(real, fake, subset_size, seed)
    return FidelityScores(
        fid=_fid(real, fake),
        kid_mean=kid_mean,
        kid_std=kid_std,
        precision=_manifold_coverage(fake, manifold=real, k=k),
        recall=_manifold_coverage(real, manifold=fake, k=k),
        n_real=n_real,
        n_fake=n_fake,
        feature_dim=dim,
        kid_subset_size=subset_size,
    )


def _checked_features(real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as float64 `[N, D]` after checking what the metrics need of them."""
    for name, x in (("real", real), ("fake", fake)):
        if x.ndim != 2:
            raise ValueError(f"{name} features must be [N, D] (one row per image), got shape {tuple(x.shape)}")
        if x.shape[0] < 2:
            raise ValueError(f"{name} features need at least 2 rows (FID fits a covariance), got {x.shape[0]}")
        if not torch.isfinite(x).all():
            raise ValueError(f"{name} features contain NaN or inf; check the readout network's output")
    if real.shape[1] != fake.shape[1]:
        dims = f"{real.shape[1]} and {fake.shape[1]}"
        raise ValueError(f"real and fake features must have the same dimension D (same readout), got {dims}")
    if real.device != fake.device:
        raise ValueError(f"real and fake features must be on one device, got {real.device} and {fake.device}")
    return real.detach().to(torch.float64), fake.detach().to(torch.float64)


class _FeatureRows(torch.nn.Module):
    """The identity over feature rows, in the slot torchmetrics keeps for a feature extractor."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features  # read by FrechetInceptionDistance to size its sums

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [N, D] -> [N, D]
        return features


def _fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """|mu_r - mu_f|^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) between Gaussian fits (Heusel et al. 2017)."""
    # sync_on_compute=False: the sets are local tensors, never to be gathered across processes.
    metric = FrechetInceptionDistance(feature=_FeatureRows(real.shape[1]), sync_on_compute=False).to(real.device)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute().item()


def _kid(real: torch.Tensor, fake: torch.Tensor, subset_size: int, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 under the kernel (x.y / D + 1)^3, mean and std over random subsets (Binkowski et al. 2018)."""
    with warnings.catch_warnings():
        # It warns that it buffers every feature row: these rows are already in memory.
        warnings.filterwarnings("ignore", message=".*will save all extracted features", category=UserWarning)
        metric = KernelInceptionDistance(
            feature=_FeatureRows(real.shape[1]), subsets=KID_SUBSETS, subset_size=subset_size, sync_on_compute=False
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    # torchmetrics draws subsets with the global CPU generator: seed a fork of it, restored on exit.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        mean, std = metric.compute()
    return mean.item(), std.item()


def _manifold_coverage(queries: torch.Tensor, manifold: torch.Tensor, k: int) -> float:
    """Mean over `queries` rows of f(phi, Phi) (Kynkäänniemi et al. 2019): 1 if inside a ball of `manifold`."""
    radii = _kth_neighbour_distances(manifold, k)  # [M]
    inside = [(torch.cdist(block, manifold) <= radii).any(dim=1) for block in queries.split(_ROWS_PER_BLOCK)]
    return torch.cat(inside).double().mean().item()


def _kth_neighbour_distances(points: torch.Tensor, k: int) -> torch.Tensor:  # [M, D] -> [M]
    """Distance from each row to its k-th nearest other row; the nearest of all is the row itself."""
    blocks = [torch.cdist(block, points).kthvalue(k + 1, dim=1).values for block in points.split(_ROWS_PER_BLOCK)]
    return torch.cat(blocks)


# --- Running it on a model ---------------------------------------------------------------------

REFERENCE_SEED = 500  # held-out renders: seeds no training set uses (datasets use 1, 2; the readout 100-102)
PROMPT_SEED = 501  # the scenes whose captions prompt the model; their renders are the floor's second set


class FeatureExtractorError(ValueError):
    """A --features file that cannot be used: says why and what is expected."""


def torchscript_features(path: Path) -> Callable[[list], torch.Tensor]:
    """A feature function from a TorchScript file, e.g. the standard FID Inception network.

    Expected: a scripted module taking uint8 images [N, 3, H, W] and returning [N, D] features when
    called with `return_features=True` (the convention of NVIDIA's `inception-2015-12-05.pt`, the
    network behind published FIDs) or, failing that, plainly. It resizes internally if it needs to.
    TorchScript, not a pickle: the file holds a graph, and loading it runs no Python code of its own.
    """
    path = Path(path)
    if not path.is_file():
        raise FeatureExtractorError(f"features: no such file {path}")
    try:
        net = torch.jit.load(str(path), map_location="cpu").eval()
    except RuntimeError as e:
        raise FeatureExtractorError(f"features: {path} is not a TorchScript module ({str(e).splitlines()[0]})") from e

    @torch.no_grad()
    def extract(images: list) -> torch.Tensor:
        rows = []
        for i in range(0, len(images), 64):
            x = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images[i : i + 64]]))
            x = x.permute(0, 3, 1, 2).contiguous()  # [N, 3, H, W] uint8
            try:
                f = net(x, return_features=True)
            except RuntimeError:  # a module without that keyword
                f = net(x)
            rows.append(f.reshape(len(x), -1).double())
        return torch.cat(rows)

    return extract


def evaluate_fidelity(generate, readout, n: int = 1000, extra_features: Callable[[list], torch.Tensor] | None = None,
                      extra_name: str = "") -> dict:
    """FID / KID / precision / recall of `generate` against `n` held-out renders, and the floor.

    The model is prompted with captions of `n` other renders (same distribution as training), so the
    floor — those renders against the reference renders — is exactly what a perfect model would score.
    `generate` is an alignment.GenerateFn: (prompts, seeds) -> images. `extra_features` (e.g.
    `torchscript_features(inception)`) adds the same scores in that feature space under "extra".
    """
    from PIL import Image

    from kaiga.data.dataset import scene_example
    from kaiga.eval.readout import features
    from kaiga.eval.readout_train import render_pool

    reference = render_pool(n, seed=REFERENCE_SEED, split="train")
    examples = [scene_example(i, PROMPT_SEED, split="train", n_captions=2) for i in range(n)]
    prompts = [captions[1] for _, captions, _ in examples]  # a random phrasing, as in training
    generated = [im.resize((64, 64), Image.BICUBIC) if im.size != (64, 64) else im
                 for im in generate(prompts, [20_000 + i for i in range(n)])]
    sets = {"reference": [Image.fromarray(a) for a in reference.pixels],
            "twin": [im for im, _, _ in examples], "generated": generated}
    f = {name: features(readout, images) for name, images in sets.items()}
    result = {
        "n": n,
        "features": f"readout penultimate layer ({f['reference'].shape[1]}-d)",
        "model": fidelity_scores(f["reference"], f["generated"]).to_dict(),
        "floor": fidelity_scores(f["reference"], f["twin"]).to_dict(),
    }
    if extra_features is not None:
        g = {name: extra_features(images) for name, images in sets.items()}
        result["extra"] = {
            "features": f"{extra_name} ({g['reference'].shape[1]}-d)",
            "model": fidelity_scores(g["reference"], g["generated"]).to_dict(),
            "floor": fidelity_scores(g["reference"], g["twin"]).to_dict(),
        }
    return result
