"""What a claim check returns: its config, its record (one JSON file), all records together."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ... import _check as check


@dataclass(frozen=True)
class TheoryConfig:
    """Settings of ``rewa reproduce theory``; ``quick`` shortens every run (under 20 s)."""

    quick: bool = False
    seed: int = 0

    def __post_init__(self):
        check.boolean("quick", self.quick)
        check.integer("seed", self.seed, 0)


@dataclass
class ClaimRecord:
    """The record of one checked claim (written as ``<key>.json``)."""

    key: str  # file stem, e.g. "example_3_2"
    claim: str  # "Example 3.2"
    statement: str  # the paper's claim, in short
    checked: str  # what was measured and the pass criterion
    inputs: dict
    measured: dict
    passed: bool
    summary: str  # one line of the key numbers, for the table
    discrepancies: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)  # PNG stems written next to the JSON
    seconds: float = math.nan

    def to_dict(self) -> dict:
        return json_ready(asdict(self))


@dataclass
class TheoryResults:
    config: TheoryConfig
    records: list[ClaimRecord]
    seconds: float

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.records)

    def to_dict(self) -> dict:
        return {
            "config": asdict(self.config),
            "passed": self.passed,
            "seconds": self.seconds,
            "records": [r.to_dict() for r in self.records],
        }


def json_ready(value):
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else str(v)  # JSON has no inf / nan
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def thin(values, keep: int = 300) -> list:
    """At most ``keep`` log-spaced entries of a series (plus the first and last)."""
    values = list(values)
    if len(values) <= keep:
        return values
    idx = np.unique(np.concatenate([[0], np.geomspace(1, len(values) - 1, keep).astype(int)]))
    return [values[i] for i in idx]
