"""The GAN objectives: hinge or non-saturating adversarial losses, and the R1 gradient penalty.

Kept apart from the networks so the maths reads on its own. `logits` are the discriminator's raw
outputs [N]; "real" and "fake" name which images they were computed on.

Example:
    >>> import torch
    >>> d_loss(GANLoss.HINGE, torch.tensor([2.0]), torch.tensor([-2.0])).item()
    0.0
    >>> g_loss(GANLoss.HINGE, torch.tensor([0.5])).item()
    -0.5
"""

from __future__ import annotations

from enum import Enum

import torch
from torch.nn.functional import relu, softplus


class GANLoss(str, Enum):
    HINGE = "hinge"  # Lim & Ye 2017; Miyato et al. 2018 (SN-GAN), BigGAN
    NON_SATURATING = "non_saturating"  # Goodfellow et al. 2014, §3; StyleGAN


def d_loss(kind: GANLoss | str, real: torch.Tensor, fake: torch.Tensor, wrong: torch.Tensor | None = None,
           mismatch: float = 0.0) -> torch.Tensor:
    """The discriminator's loss: push real logits up and fake logits down.

    `wrong` are logits of real images under wrong captions (GAN-CLS, Reed et al. 2016, Algorithm 1): they
    count as fake, taking the share `mismatch` of the fake term.
    """
    hinge = GANLoss(kind) is GANLoss.HINGE
    real_term = relu(1 - real).mean() if hinge else softplus(-real).mean()  # E[max(0, 1 - D(x))] / -log σ(D(x))
    as_fake = (lambda logits: relu(1 + logits).mean()) if hinge else (lambda logits: softplus(logits).mean())
    fake_term = as_fake(fake)  # E[max(0, 1 + D(G(z)))] / -log(1 - σ(D(G(z))))
    if wrong is not None and mismatch > 0:
        fake_term = (1 - mismatch) * fake_term + mismatch * as_fake(wrong)
    return real_term + fake_term


def g_loss(kind: GANLoss | str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's loss: push the fake logits up."""
    if GANLoss(kind) is GANLoss.HINGE:
        return -fake.mean()  # -E[D(G(z))]
    return softplus(-fake).mean()  # -log σ(D(G(z))), the non-saturating form


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018, eq. 9): E‖∇ₓD(x)‖² on real images, differentiable for D's update.

    `real` must require grad and `real_logits` be computed from it (through the augmentation).
    """
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
