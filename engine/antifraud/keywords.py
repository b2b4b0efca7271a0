"""The keyword filter, pure: word lists (global and per room) compiled into Aho-Corasick automata
(pyahocorasick), so a danmaku is checked against thousands of words in one pass over its text.

Each word has an action: `block` (the message is refused), `mask` (the word is replaced by
`***`) or `flag` (the message goes out and the host gets a `danmaku.flagged` event to review).
Matching ignores case and character width (NFKC + casefold) and invisible format characters
(zero-width spaces and joiners), and finds words inside longer text (needed for Chinese, which
has no spaces); masking replaces exactly the characters of the original text that matched.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import ahocorasick

MAX_WORD_CHARS: Final = 64
MASK: Final = "***"


class WordAction(StrEnum):
    BLOCK = "block"
    MASK = "mask"
    FLAG = "flag"


_RANK: Final = {WordAction.FLAG: 1, WordAction.MASK: 2, WordAction.BLOCK: 3}


def normalize(text: str) -> tuple[str, list[int]]:
    """(the text as matched, the index in `text` of each of its characters)."""
    chars: list[str] = []
    where: list[int] = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch) == "Cf":
            continue
        for folded in unicodedata.normalize("NFKC", ch).casefold():
            chars.append(folded)
            where.append(i)
    return "".join(chars), where


def normalize_word(word: str) -> str:
    """A list entry as it is stored and matched; ValueError if it is not a usable word."""
    if not isinstance(word, str):
        raise ValueError("a word must be a string")
    text, _ = normalize(word.strip())
    if not text or not text.strip():
        raise ValueError("a word must not be empty")
    if len(text) > MAX_WORD_CHARS:
        raise ValueError(f"a word has at most {MAX_WORD_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Co") for ch in text):
        raise ValueError("a word must not contain control characters")
    return text


class WordList:
    """One list (global, or a room's) compiled into an automaton."""

    __slots__ = ("_automaton", "words")

    def __init__(self, words: Mapping[str, str] | None = None) -> None:
        self.words: dict[str, WordAction] = {}
        for word, action in (words or {}).items():
            try:
                self.words[normalize_word(word)] = WordAction(action)
            except ValueError:
                continue  # a bad stored entry is skipped, never fatal
        self._automaton: Any = None
        if self.words:
            automaton = ahocorasick.Automaton()
            for word, action in self.words.items():
                automaton.add_word(word, (len(word), word, action))
            automaton.make_automaton()
            self._automaton = automaton

    def __len__(self) -> int:
        return len(self.words)

    def matches(self, normalized: str) -> Iterable[tuple[int, int, str, WordAction]]:
        """(start, end exclusive, word, action) of every occurrence in the normalized text."""
        if self._automaton is None:
            return
        for end, (length, word, action) in self._automaton.iter(normalized):
            yield end - length + 1, end + 1, word, action


EMPTY: Final = WordList()


@dataclass(frozen=True, slots=True)
class Verdict:
    action: WordAction | None  # the strongest action among the matches; None: no match
    text: str  # the text to send (masked where needed)
    words: tuple[str, ...]  # the matched words (normalized), for the log and the flag event
    flag: bool = False  # a `flag` word matched: the host reviews the message (even if masked)

    @property
    def blocked(self) -> bool:
        return self.action is WordAction.BLOCK


def check(text: str, lists: Iterable[WordList]) -> Verdict:
    """Run `text` through every list."""
    normalized, where = normalize(text)
    spans: list[tuple[int, int]] = []
    words: list[str] = []
    strongest: WordAction | None = None
    flag = False
    for word_list in lists:
        for start, end, word, action in word_list.matches(normalized):
            words.append(word)
            if strongest is None or _RANK[action] > _RANK[strongest]:
                strongest = action
            if action is WordAction.MASK:
                spans.append((where[start], where[end - 1] + 1))
            elif action is WordAction.FLAG:
                flag = True
    if strongest is None:
        return Verdict(None, text, ())
    if spans and strongest is not WordAction.BLOCK:
        text = _mask(text, spans)
    return Verdict(strongest, text, tuple(dict.fromkeys(words)), flag)


def _mask(text: str, spans: list[tuple[int, int]]) -> str:
    spans.sort()
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, pos = [], 0
    for start, end in merged:
        out.append(text[pos:start])
        out.append(MASK)
        pos = end
    out.append(text[pos:])
    return "".join(out)
