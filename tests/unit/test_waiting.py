"""The suite's polling helper: what it returns, and how it says what it waited for."""

from __future__ import annotations

import pytest

from tests.waiting import wait_for


def test_returns_the_first_truthy_answer() -> None:
    answers = iter([None, 0, "", ["ready"]])

    assert wait_for(lambda: next(answers), timeout=5, what="an answer", interval=0) == ["ready"]


def test_a_timeout_names_what_was_awaited() -> None:
    calls = []

    def never() -> bool:
        calls.append(1)
        return False

    with pytest.raises(AssertionError, match=r"^timed out after 0\.1s waiting for the moon$"):
        wait_for(never, 0.1, "the moon", interval=0.01)
    assert len(calls) >= 2  # asked at the start and once more at the deadline


def test_what_is_required() -> None:
    with pytest.raises(TypeError, match="what"):
        wait_for(lambda: True, 1)  # type: ignore[call-arg]
