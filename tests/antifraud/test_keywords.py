"""The keyword filter, pure: actions, normalisation, masking, thousands of words, any input."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.antifraud.keywords import EMPTY, MASK, WordAction, WordList, check, normalize_word

LIST = WordList({"spam": "block", "Bad": "mask", "刷单": "mask", "review me": "flag",
                 "vpn": "flag"})  # fmt: skip


def test_block_mask_and_flag() -> None:
    assert check("no spam here", [LIST]).blocked
    masked = check("this is BAD, ｂａｄ and b\u200bad 刷单吗", [LIST])
    assert masked.action is WordAction.MASK
    assert masked.text == f"this is {MASK}, {MASK} and {MASK} {MASK}吗"
    flagged = check("please Review Me", [LIST])
    assert flagged.action is WordAction.FLAG and flagged.flag and flagged.text == "please Review Me"
    assert flagged.words == ("review me",)
    both = check("bad vpn", [LIST])  # masked, and still up for review
    assert both.action is WordAction.MASK and both.flag and both.text == f"{MASK} vpn"
    clean = check("hello 主播", [LIST])
    assert clean.action is None and clean.text == "hello 主播" and not clean.flag


def test_overlapping_and_repeated_matches_are_masked_once() -> None:
    words = WordList({"abc": "mask", "bcd": "mask", "b": "mask"})
    assert check("xabcdx abc b", [words]).text == f"x{MASK}x {MASK} {MASK}"


def test_global_and_room_lists_both_apply_the_strongest_action_wins() -> None:
    room = WordList({"bad": "block"})
    assert check("bad", [LIST, room]).blocked
    assert check("bad", [LIST, EMPTY]).action is WordAction.MASK
    assert check("anything", [EMPTY, EMPTY]).action is None


def test_thousands_of_words_in_one_pass() -> None:
    rng = random.Random(5)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = {"".join(rng.choices(letters, k=rng.randint(4, 12))): "mask" for _ in range(5000)}
    big = WordList(words)
    assert len(big) == len(words)
    some = rng.sample(sorted(words), 20)
    text = " ".join(w.upper() for w in some)
    verdict = check(text, [big])
    assert verdict.action is WordAction.MASK
    assert set(some) <= set(verdict.words)
    assert not any(w in verdict.text.lower() for w in some)


def test_bad_words_are_refused_and_bad_stored_entries_skipped() -> None:
    for bad in ("", "   ", "\u200b", "x" * 65, "a\x00b"):
        with pytest.raises(ValueError):
            normalize_word(bad)
    assert len(WordList({"": "mask", "ok": "mask", "x": "smite"})) == 1


ALNUM = st.text("abcXYZ019é刷单", min_size=1, max_size=6)


@given(
    text=st.text(max_size=300),
    words=st.dictionaries(
        st.text(min_size=1, max_size=10), st.sampled_from(["block", "mask", "flag"]), max_size=30
    ),
)
@settings(max_examples=300)
def test_any_text_against_any_list_never_raises(text: str, words: dict[str, str]) -> None:
    verdict = check(text, [WordList(words)])
    assert isinstance(verdict.text, str)
    if verdict.action is None:
        assert verdict.text == text and not verdict.words


@given(text=st.text("abcXYZ019é刷单 *\u200b", max_size=120), words=st.lists(ALNUM, max_size=8))
@settings(max_examples=300)
def test_nothing_masked_is_left_in_the_masked_text(text: str, words: list[str]) -> None:
    masks = WordList(dict.fromkeys(words, "mask"))
    verdict = check(text, [masks])
    # an unmasked stretch is a piece of the original, so a word left in it would have been found
    assert not check(verdict.text, [masks]).words
