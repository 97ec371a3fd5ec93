"""When to keep evidence (`--save-when`): a condition parsed from its text, and pure tests on a record.

    label:NAME[>=SCORE]  the top-1 class is NAME (classification), or a detection is a NAME (detection, or
                         the top-1 of a detection's own classification); at least SCORE if given
    change               the task's change key differs from the previous frame's (top-1, set of labels)
    below:SCORE          an uncertain frame: the top-1 scores below SCORE (or nothing passed --threshold),
                         or a detection (or its classification) scores below SCORE
    every:DURATION       at most one frame per DURATION (30s, 5m, 1h, 500ms; a bare number is seconds;
                         0 keeps every frame)

Label names match whole and case-insensitively ("Egyptian cat", "person").
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from edgenet.errors import UsageError

USAGE = "label:NAME[>=SCORE], change, below:SCORE or every:DURATION (e.g. label:person>=0.6, every:30s)"
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


@dataclass(frozen=True)
class Condition:
    kind: str  # label, change, below, every
    label: str | None = None
    score: float | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        if self.kind == "label":
            return f"label:{self.label}" + ("" if self.score is None else f">={self.score:g}")
        if self.kind == "below":
            return f"below:{self.score:g}"
        if self.kind == "every":
            return f"every:{self.seconds:g}s"
        return self.kind


def _score(text: str, given: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise UsageError(f"--save-when {given}: a score is a number from 0 to 1, not {text!r}")
    return value


def parse_duration(text: str, given: str) -> float:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s|min|m|h|d)?\s*", text)
    if not match:
        raise UsageError(f"--save-when {given}: a duration is like 30s, 5m, 1h or 500ms, not {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_condition(text: str) -> Condition:
    """One `--save-when` value; a UsageError (exit 2) says what is accepted."""
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind == "change" and not rest.strip():
        return Condition("change")
    if kind == "label" and rest.strip():
        name, sep, score = rest.rpartition(">=")
        if not sep:
            name, score = rest, None
        if not name.strip():
            raise UsageError(f"--save-when {text}: give the label's name, e.g. label:person>=0.6")
        return Condition("label", label=name.strip(), score=None if score is None else _score(score, text))
    if kind == "below" and rest.strip():
        return Condition("below", score=_score(rest.strip(), text))
    if kind == "every" and rest.strip():
        return Condition("every", seconds=parse_duration(rest, text))
    raise UsageError(f"--save-when {text!r}: give {USAGE}")


def _classified(record: dict) -> list[dict]:
    """The record's scored guesses that count as "what this frame is": the top-1 of a classification, or
    every detection and the top-1 of each detection's own classification."""
    if "detections" in record:
        found = []
        for detection in record.get("detections") or []:
            found.append(detection)
            top = ((detection.get("classification") or {}).get("top_k")) or []
            found.extend(top[:1])
        return found
    return (record.get("top_k") or [])[:1]


def has_label(record: dict, name: str, score: float | None = None) -> bool:
    wanted = name.casefold()
    return any(
        str(guess.get("label", "")).casefold() == wanted and (score is None or guess["score"] >= score)
        for guess in _classified(record)
    )


def is_uncertain(record: dict, score: float) -> bool:
    guesses = _classified(record)
    if "detections" not in record and not guesses:
        return True  # a classification where nothing passed --threshold
    return any(guess["score"] < score for guess in guesses)


def holds_now(condition: Condition, record: dict) -> bool:
    """The conditions that need nothing but the record (label, below)."""
    if condition.kind == "label":
        return has_label(record, condition.label, condition.score)
    if condition.kind == "below":
        return is_uncertain(record, condition.score)
    raise ValueError(f"{condition.kind} needs the frames before it")


class Trigger:
    """Decides, frame after frame, whether any of the conditions holds; keeps what `change` and `every` need
    (the previous key, when each `every` last fired). Error records never hold (they have no picture)."""

    _UNSET = object()

    def __init__(self, conditions: tuple[Condition, ...]):
        self.conditions = conditions
        self._previous = self._UNSET
        self._last_fired: dict[int, float] = {}

    def reasons(self, record: dict, key, when: float) -> list[str]:
        """The conditions that hold for this frame (`when`: its time in seconds), in the order given."""
        if "error" in record:
            return []
        found = []
        changed = self._previous is self._UNSET or key != self._previous
        self._previous = key
        for position, condition in enumerate(self.conditions):
            if condition.kind == "change":
                hit = changed
            elif condition.kind == "every":
                last = self._last_fired.get(position)
                hit = last is None or when - last >= condition.seconds or when < last
                if hit:
                    self._last_fired[position] = when
            else:
                hit = holds_now(condition, record)
            if hit:
                found.append(str(condition))
        return found
