"""The guard grammar's classes: a test of one fact, ``all``/``any``/``not`` of guards, and a time test
(:class:`~engine.language.moments.SinceGuard`). Evaluating them is :mod:`engine.language.guards`'s; this module
only says what a guard may contain (part of :mod:`engine.language.model`, re-exported there)."""

from __future__ import annotations

from pydantic import Field, model_validator

from engine.language.fields import FactName, Scalar, Spec
from engine.language.moments import SinceGuard

__all__ = ["AllGuard", "AnyGuard", "FactGuard", "Guard", "NotGuard"]


class FactGuard(Spec):
    """A test of one fact; exactly one operator."""

    fact: FactName = Field(description="Declared fact to test.", examples=["insurance"])
    equals: Scalar | None = Field(None, description="Fact equals this value.")
    not_equals: Scalar | None = Field(None, description="Fact differs from this value.")
    in_: list[Scalar] | None = Field(None, alias="in", description="Fact is one of these values.")
    at_least: float | None = Field(None, description="Numeric fact is at least this.")
    at_most: float | None = Field(None, description="Numeric fact is at most this.")
    is_set: bool | None = Field(None, description="Fact has (true) or lacks (false) a value.")

    @model_validator(mode="after")
    def _one_operator(self) -> FactGuard:
        ops = [n for n in self.operators() if getattr(self, n) is not None]
        if len(ops) > 1:  # two conditions on one fact: the designer meant both
            both = [f"{{ fact: {self.fact}, {op.rstrip('_')}: ... }}" for op in ops]
            raise ValueError(f"a fact test has one operator; to test all of them: all: [{', '.join(both)}]")
        if len(ops) != 1:
            raise ValueError("a fact test needs exactly one of equals, not_equals, in, at_least, at_most, is_set")
        return self

    @staticmethod
    def operators() -> tuple[str, ...]:
        return ("equals", "not_equals", "in_", "at_least", "at_most", "is_set")


class AllGuard(Spec):
    """True when every condition is true."""

    all: list[Guard] = Field(min_length=1, description="Conditions that must all hold.")


class AnyGuard(Spec):
    """True when at least one condition is true."""

    any: list[Guard] = Field(min_length=1, description="Conditions of which one must hold.")


class NotGuard(Spec):
    """True when the condition is false."""

    not_: Guard = Field(alias="not", description="Condition that must not hold.")


Guard = FactGuard | AllGuard | AnyGuard | NotGuard | SinceGuard
