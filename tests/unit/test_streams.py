"""Open log streams are counted per client and in all, and every way a response ends gives
its slot back: read to the end, closed while read, or closed before it was read at all."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from config import Settings, SettingsError
from fglab.errors import TooManyRequests, Unavailable
from fglab.streams import RETRY_AFTER_S, StreamSlots


def _events() -> Iterator[str]:
    yield "one"
    yield "two"


def test_a_client_past_its_cap_is_refused_with_a_wait() -> None:
    slots = StreamSlots(per_client=2, total=10)
    slots.admit("10.0.0.1")
    slots.admit("10.0.0.1")
    with pytest.raises(TooManyRequests, match=r"from 10\.0\.0\.1: the cap is 2 per client") as e:
        slots.admit("10.0.0.1")
    assert "FGLAB_STREAMS_PER_CLIENT" in e.value.message
    assert (e.value.status, e.value.retry_after) == (429, RETRY_AFTER_S)
    slots.admit("10.0.0.2")  # another client still gets one
    assert (slots.open("10.0.0.1"), slots.open("10.0.0.2"), slots.open()) == (2, 1, 3)


def test_past_the_cap_in_all_everyone_is_refused() -> None:
    slots = StreamSlots(per_client=5, total=2)
    slots.admit("10.0.0.1")
    slots.admit("10.0.0.2")
    with pytest.raises(Unavailable, match=r"the cap is 2 in all \(FGLAB_STREAMS_MAX\)") as e:
        slots.admit("10.0.0.3")
    assert (e.value.status, e.value.retry_after) == (503, RETRY_AFTER_S)
    assert slots.open() == 2


def test_a_stream_read_to_its_end_gives_its_slot_back() -> None:
    slots = StreamSlots(per_client=1, total=1)
    held = slots.admit("c").hold(_events())
    assert list(held) == ["one", "two"]
    assert slots.open() == 0
    held.close()  # the server closes it too: still released once
    assert slots.open() == 0


def test_a_stream_closed_while_read_gives_its_slot_back() -> None:
    slots = StreamSlots(per_client=1, total=1)
    events = _events()
    held = slots.admit("c").hold(events)
    assert next(held) == "one"
    held.close()
    assert slots.open() == 0
    assert next(events, None) is None  # the inner generator was closed
    slots.admit("c")  # the slot came back


def test_a_stream_never_read_gives_its_slot_back_when_closed() -> None:
    slots = StreamSlots(per_client=1, total=1)
    held = slots.admit("c").hold(_events())
    held.close()
    assert slots.open() == 0


def test_a_stream_that_fails_gives_its_slot_back() -> None:
    def failing() -> Iterator[str]:
        yield "one"
        raise OSError("gone")

    slots = StreamSlots(per_client=1, total=1)
    held = slots.admit("c").hold(failing())
    assert next(held) == "one"
    with pytest.raises(OSError, match="gone"):
        next(held)
    assert slots.open() == 0


def test_stream_settings_default_and_refuse_non_positive_values() -> None:
    settings = Settings.from_env({})
    assert (settings.streams_per_client, settings.streams_max, settings.stream_lifetime) == (
        20,
        100,
        300,
    )
    changed = Settings.from_env(
        {"FGLAB_STREAMS_PER_CLIENT": "3", "FGLAB_STREAMS_MAX": "7", "FGLAB_STREAM_LIFETIME": "9"}
    )
    assert Settings.from_env(changed.to_env()) == changed  # survives a child's environment
    assert (changed.streams_per_client, changed.streams_max, changed.stream_lifetime) == (3, 7, 9)
    for variable in ("FGLAB_STREAMS_PER_CLIENT", "FGLAB_STREAMS_MAX", "FGLAB_STREAM_LIFETIME"):
        with pytest.raises(SettingsError, match=rf"{variable}='0' is out of range"):
            Settings.from_env({variable: "0"})
