"""Trying each source in turn: the first that answers wins, the others are named."""

from __future__ import annotations

from queries.source import SourceUnavailable, first_answer


class Answering:
    def __init__(self, name: str, up: bool) -> None:
        self.name, self.up = name, up

    def ask(self) -> str:
        if not self.up:
            raise SourceUnavailable(self.name, "connection refused")
        return f"{self.name} says 42"


def test_the_first_source_that_answers_wins_and_the_ones_before_are_named():
    notices: list[str] = []
    sources = [Answering("prometheus", False), Answering("sql", True), Answering("x", True)]
    found = first_answer(sources, Answering.ask, notices, "trying the next source.")
    assert found is not None and found[0] is sources[1] and found[1] == "sql says 42"
    assert notices == ["prometheus unavailable: connection refused — trying the next source."]


def test_no_source_answering_gives_none_with_every_source_named():
    notices: list[str] = []
    sources = [Answering("prometheus", False), Answering("sql", False)]
    assert first_answer(sources, Answering.ask, notices, "next.") is None
    assert len(notices) == 2 and notices[1].startswith("sql unavailable")
