"""A failed trial's message quotes the end of its log without what a terminal would act on:
escape sequences (colours, cursor moves, window titles) and other control characters."""

from __future__ import annotations

import pytest

from katib.controller._follow import _CONTROLS, _ESCAPES


def _clean(text: str) -> list[str]:
    text = _ESCAPES.sub("", text)
    return [kept for line in text.splitlines() if (kept := line.translate(_CONTROLS)).strip()]


@pytest.mark.parametrize(("log", "shown"), [
    ("\x1b[31mred\x1b[0m plain", ["red plain"]),
    ("\x1b[1;38;5;208mbold orange\x1b[m", ["bold orange"]),
    ("\x1b]0;a title\x07after", ["after"]),
    ("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\", ["link"]),
    # an OSC never ended stops at its line's end: the next lines (a traceback) are kept
    ("\x1b]0;unterminated\nTraceback (most recent call last):\nValueError: x", ["Traceback (most recent call last):", "ValueError: x"]),
    ("progress 10%\rprogress 100%", ["progress 10%", "progress 100%"]),
    ("bell\x07 back\x08space \x9b31m c1", ["bell backspace 31m c1"]),
    ("\x1b\x1b\x1b", []),  # a line of nothing but control characters is no line
    ("tab\tkept", ["tab\tkept"]),
])
def test_the_log_tail_keeps_text_and_drops_what_a_terminal_acts_on(log, shown):
    got = _clean(log)
    assert got == shown
    assert not any(ch in line for line in got for ch in "\x1b\x07\x08\x9b\r")
