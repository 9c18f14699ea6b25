"""The prompt check: the default list flags its own terms as whole words, and the user's file extends it
(a term added) and overrides it (a default removed), read at each check."""

import pytest

from kaiga.data.dataset import scene_example
from kaiga.safety.blocklist import DEFAULT_FILE, Blocklist, parse_terms, user_file


def test_every_default_term_is_flagged_in_a_prompt_and_whole_words_only():
    defaults, removed = parse_terms(DEFAULT_FILE.read_text())
    assert removed == set() and 10 <= len(defaults) <= 40  # small and sober
    bl = Blocklist.load()
    for term in defaults:
        assert term in bl.match(f"a painting, ({term.upper()}:1.2), watercolor")
    for clean in ("a denuded hillside", "a gorge at sunset", "a red car", "a sextant on a boat", "snake"):
        assert bl.match(clean) == (), clean


def test_scenes_prompts_are_never_flagged():
    bl = Blocklist.load()
    captions = [c for i in range(300) for c in scene_example(i, seed=11)[1]]
    assert len(captions) == 1200 and [c for c in captions if bl.match(c)] == []


def test_the_users_file_adds_and_removes_terms_at_once():
    path = user_file()  # under the test's own KAIGA_HOME (conftest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# my studio's list\nzebra crossing\n-gore\n\n")
    bl = Blocklist.load()
    assert bl.match("a ZEBRA   crossing in the city") == ("zebra crossing",)
    assert bl.match("gore") == () and bl.match("a naked tree") == ("naked",)
    path.write_text("")  # an edit applies at the next load
    assert Blocklist.load().match("gore") == ("gore",)


@pytest.mark.parametrize("line", ["-", "  # only a comment", "   "])
def test_lines_without_a_term_are_ignored(line):
    assert parse_terms(line) == (set(), set())
