"""Debounced region states: a region's state changes only after `confirm` agreeing results in a row, and a
confirmed change is a record of its own (edgenet.run.records.state_event). A frame that failed (a lost
camera) neither confirms nor breaks a streak."""

from __future__ import annotations

from edgenet.run.records import state_event
from edgenet.tasks.regions import region_states


class Debounced:
    """One region's confirmed state, and the candidate that has agreed `count` times in a row."""

    def __init__(self, confirm: int):
        self.confirm = max(1, confirm)
        self.state: str | None = None
        self.candidate: str | None = None
        self.count = 0

    def update(self, value: str) -> tuple[str | None, str] | None:
        """(from, to) when this result confirms a change, else None."""
        if value == self.state:
            self.candidate, self.count = None, 0
            return None
        if value == self.candidate:
            self.count += 1
        else:
            self.candidate, self.count = value, 1
        if self.count < self.confirm:
            return None
        change = (self.state, value)
        self.state, self.candidate, self.count = value, None, 0
        return change


class RegionStates:
    """Watches the records of a run with regions; `observe(record)` gives the state events it confirms."""

    def __init__(self, confirm: int = 3):
        self.confirm = confirm
        self.regions: dict[str, Debounced] = {}

    def observe(self, record: dict) -> list[dict]:
        if "error" in record or "regions" not in record:
            return []
        events = []
        for name, (state, score) in region_states(record).items():
            change = self.regions.setdefault(name, Debounced(self.confirm)).update(state)
            if change is not None:
                events.append(state_event(record, name, change[0], change[1], score))
        return events
