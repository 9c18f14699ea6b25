"""Which class implements each family, imported only when a model of that family is used.

Example:
    >>> family_class("vae").__name__
    'ConditionalVAE'
    >>> sorted(FAMILIES)
    ['diffusion', 'gan', 'transformer', 'vae']
"""

from __future__ import annotations

from importlib import import_module

FAMILIES = {
    "diffusion": "kaiga.families.diffusion.model:LatentDiffusion",
    "gan": "kaiga.families.gan.model:TextGAN",
    "vae": "kaiga.families.vae.model:ConditionalVAE",
    "transformer": "kaiga.families.transformer.model:DalleTransformer",
}


def family_class(family: str):
    """The model class of `family`; ValueError naming the known families otherwise."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}: known families are {', '.join(FAMILIES)}")
    module, name = FAMILIES[family].split(":")
    return getattr(import_module(module), name)
