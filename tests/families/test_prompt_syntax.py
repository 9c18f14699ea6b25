"""A1111's weighting syntax in the families without per-token text states (gan, vae, transformer):
they read its plain text, so `(red:1.3)` is the word red, not `( red : 1 . 3 )`."""

from __future__ import annotations

import pytest
import torch

from kaiga.families.registry import family_class


@pytest.mark.parametrize("family", ["gan", "vae", "transformer"])
def test_weighting_syntax_is_read_as_plain_text(family):
    cls = family_class(family)
    torch.manual_seed(0)
    model = cls.create(cls.config_class.tiny())
    assert torch.equal(model.tokenize(["a (red:1.3) car, [snow]", "((night))"]),
                       model.tokenize(["a red car, snow", "night"]))
