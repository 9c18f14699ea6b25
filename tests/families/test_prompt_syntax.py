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


@pytest.mark.parametrize("family", ["gan", "vae"])
def test_composed_prompts_are_weighted_sums_of_text_vectors(family):
    cls = family_class(family)
    torch.manual_seed(0)
    model = cls.create(cls.config_class.tiny()).eval()
    cond = lambda p: model.conditioning([p])[0]  # noqa: E731
    car, boat, empty = cond("a red car"), cond("a blue boat"), cond("")
    assert torch.allclose(cond("a red car AND a blue boat"), (car + boat) / 2, atol=1e-6)
    assert torch.allclose(cond("a red car AND a blue boat :0"), car, atol=1e-6)
    assert torch.allclose(cond("a [red car:blue boat:0.25]"), 0.25 * car + 0.75 * boat, atol=1e-6)
    assert torch.allclose(cond("a red car::3 a blue boat::-1"), car - (boat - empty) / 3, atol=1e-5)


def test_the_transformer_reads_the_heaviest_part(caplog):
    from kaiga.families.transformer.model import main_texts

    assert main_texts(["a red car::1 a blue boat::3", "a red car"]) == ["a blue boat", "a red car"]
    assert "reads one text" in caplog.text
