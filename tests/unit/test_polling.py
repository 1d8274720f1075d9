"""The pauses between the polls of a wait."""

from itertools import islice

from gpuctl.polling import pauses


def test_pauses_start_short_and_double_up_to_the_cap() -> None:
    assert list(islice(pauses(2.0), 6)) == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]


def test_a_cap_below_the_first_pause_is_every_pause() -> None:
    assert list(islice(pauses(0.01), 3)) == [0.01, 0.01, 0.01]
