"""`ShutdownReport`: the report of one shutdown, as every node of ours writes it (the JSON file, the
log line), read as Python objects."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepResult:
    """One step's entry: what it did, how it ended, what it found."""

    name: str
    kind: str
    outcome: str
    duration: float
    attempts: int
    critical: bool
    error: str | None = None
    problems: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int | None] = field(default_factory=dict)
    summary: str | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StepResult:
        return cls(
            name=d["name"],
            kind=d["kind"],
            outcome=d["outcome"],
            duration=d["duration"],
            attempts=d["attempts"],
            critical=d["critical"],
            error=d.get("error"),
            problems=list(d.get("problems", [])),
            details=dict(d.get("details", {})),
            counts=dict(d.get("counts", {})),
            summary=d.get("summary"),
        )


class ShutdownReport:
    """The report of a shutdown: ``outcome`` (``clean``, ``degraded``, ``aborted``, ``forced``),
    ``exit_code`` (0, 10, 11, 12), ``reason``, ``duration`` and one :class:`StepResult` per step."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data
        self.steps = [StepResult.from_dict(s) for s in data.get("steps", [])]

    @classmethod
    def from_json(cls, text: str) -> ShutdownReport:
        return cls(json.loads(text))

    @property
    def outcome(self) -> str:
        return self._data["outcome"]

    @property
    def exit_code(self) -> int:
        return self._data["exit_code"]

    @property
    def reason(self) -> str:
        return self._data["reason"]

    @property
    def forced_by(self) -> str | None:
        return self._data.get("forced_by")

    @property
    def duration(self) -> float:
        return self._data["duration"]

    @property
    def trader_id(self) -> str:
        return self._data["trader_id"]

    @property
    def sink_errors(self) -> list[str]:
        return list(self._data.get("sink_errors", []))

    def step(self, name: str) -> StepResult | None:
        """The entry of the step named ``name``."""
        return next((s for s in self.steps if s.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(self._data))

    def to_json(self) -> str:
        """The report as one line of JSON, as the report file and the log line hold it."""
        return json.dumps(self._data, separators=(",", ":"))

    def __repr__(self) -> str:
        return (
            f"ShutdownReport(outcome={self.outcome!r}, exit_code={self.exit_code}, "
            f"reason={self.reason!r}, steps={[(s.name, s.outcome) for s in self.steps]})"
        )
