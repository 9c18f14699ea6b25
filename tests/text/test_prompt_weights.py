"""A1111's prompt weighting syntax: spans and weights, plain text, and what the unknown-word check reads."""

from __future__ import annotations

import pytest

from kaiga.text.prompt_weights import ROUND, SQUARE, is_plain, parse_weights, plain_text
from kaiga.text.tokenizer import build_word_tokenizer, unknown_words


def weights(prompt: str) -> list[tuple[str, float]]:
    return [(s.text, round(s.weight, 4)) for s in parse_weights(prompt)]


@pytest.mark.parametrize("prompt, expected", [
    ("a red car", [("a red car", 1.0)]),
    ("a (red:1.3) car", [("a ", 1.0), ("red", 1.3), (" car", 1.0)]),
    ("(red)", [("red", ROUND)]),
    ("((red))", [("red", round(ROUND**2, 4))]),
    ("[fog]", [("fog", round(SQUARE, 4))]),
    ("(a (b:2) c)", [("a ", ROUND), ("b", 2 * ROUND), (" c", ROUND)]),
    ("(red: 0.5 )", [("red", 0.5)]),
    ("(red:.5)", [("red", 0.5)]),
])
def test_brackets_weigh_the_text_inside(prompt, expected):
    assert weights(prompt) == expected


def test_escaped_brackets_and_stray_ones_are_text():
    assert weights(r"\(night\) \[x\] a\\b") == [("(night) [x] a\\b", 1.0)]
    assert weights("a) b] c:1.3) d") == [("a) b] c:1.3) d", 1.0)]
    assert weights("style: watercolor") == [("style: watercolor", 1.0)]


def test_an_unclosed_bracket_weighs_the_rest_as_a1111():
    assert weights("a (red car") == [("a ", 1.0), ("red car", ROUND)]
    assert weights("a [fog") == [("a ", 1.0), ("fog", round(SQUARE, 4))]


def test_plain_text_is_what_the_tokenizer_reads():
    assert plain_text("a (red:1.3) car, [fog], ((night))") == "a red car, fog, night"
    assert plain_text("") == "" and parse_weights("") == parse_weights("()")
    assert is_plain("a red car, night") and not is_plain("a (red) car") and not is_plain(r"a \(red\)")


def test_weighting_syntax_is_no_unknown_words():
    tok = build_word_tokenizer({"a", "red", "car", "3"})
    assert unknown_words(tok, "a (red:1.3) car") == []  # not `(`, `:`, `.`, nor 3 as a count
    assert unknown_words(tok, "[a] ((red)) (zebra:0.8) car") == ["zebra"]
