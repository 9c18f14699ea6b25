"""The alignment suite: fixed, covering every category, held-out cases really held out."""

from __future__ import annotations

from collections import Counter

from kaiga.data.captions import vocabulary_words
from kaiga.eval.prompts import CATEGORIES, PER_CATEGORY, SUITE_VERSION, _held, prompt_suite


def test_the_suite_is_fixed():
    assert prompt_suite() == prompt_suite()
    assert SUITE_VERSION == 1  # changing the suite means bumping this (results record it)


def test_every_category_has_its_seen_prompts_and_no_prompt_repeats():
    suite = prompt_suite()
    seen = Counter(c.category for c in suite if not c.held_out)
    assert seen == {c: PER_CATEGORY for c in CATEGORIES}
    assert len({c.prompt for c in suite}) == len(suite)


def test_held_out_cases_contain_a_held_out_pair_and_seen_ones_none():
    for c in prompt_suite():
        assert _held(c.objects, c.scene, c.weather, c.time, c.style) == c.held_out, c


def test_prompts_use_only_words_the_models_know():
    known = vocabulary_words()
    for c in prompt_suite():
        words = c.prompt.replace(",", " ").replace("-", " - ").split()
        assert set(words) <= known, (c.prompt, set(words) - known)


def test_prompts_are_phrased_several_ways():
    prompts = [c.prompt for c in prompt_suite()]
    assert any(", " in p for p in prompts)  # tag lists
    assert any(" of " in p and p.split()[0] not in ("a", "an") for p in prompts)  # "<style> of ..."
    assert any("," not in p and len(p.split()) <= 3 for p in prompts)  # bare noun phrases, no scene
