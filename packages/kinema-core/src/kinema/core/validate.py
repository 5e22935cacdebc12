"""One validation layer for values users type: command-line options and config keys.

Every check raises ``KinemaError`` with one line naming the value, the field and the fix, before any
slow work starts. Click's own ``FloatRange`` lets NaN through (every comparison with NaN is false),
and Python's ``int`` has no upper bound, so these checks are written out once here.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import click

from .errors import KinemaError

# seeds go to torch.Generator.manual_seed, which takes at most a 64-bit value
MAX_SEED = 2**63 - 1


def _bounds(minimum, maximum, min_open: bool) -> str:
    low = "" if minimum is None else f"{'>' if min_open else '>='} {minimum}"
    high = "" if maximum is None else f"<= {maximum}"
    return " and ".join(p for p in (low, high) if p)


def check_number(value: Any, field: str, *, minimum: Optional[float] = None, maximum: Optional[float] = None,
                 min_open: bool = False, integer: bool = False, fix: str = "") -> float | int:
    """``value`` as a finite number (an ``int`` when ``integer``) within the bounds, else a KinemaError.

    A float with a fraction is refused where an integer is asked for (``max_steps=1.5`` is a typo, not 2)."""
    kind = "a whole number" if integer else "a finite number"
    hint = f"; {fix}" if fix else ""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise KinemaError(f"{field}={value!r} is not {kind}{hint}")
    if not math.isfinite(value):
        raise KinemaError(f"{field}={value!r} is not {kind}{hint}")
    if integer:
        if value != int(value):
            raise KinemaError(f"{field}={value!r} is not {kind}{hint}")
        value = int(value)
    too_low = minimum is not None and (value <= minimum if min_open else value < minimum)
    too_high = maximum is not None and value > maximum
    if too_low or too_high:
        raise KinemaError(f"{field}={value!r} is out of range: it must be {_bounds(minimum, maximum, min_open)}{hint}")
    return value


class FiniteFloat(click.ParamType):
    """A click option type for finite floats within bounds (NaN and inf refused with the option's name)."""

    name = "number"

    def __init__(self, minimum: Optional[float] = None, maximum: Optional[float] = None, min_open: bool = False):
        self.minimum, self.maximum, self.min_open = minimum, maximum, min_open

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            number = value
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        too_low = self.minimum is not None and (number <= self.minimum if self.min_open else number < self.minimum)
        if too_low or (self.maximum is not None and number > self.maximum):
            self.fail(f"{value} is out of range: it must be {_bounds(self.minimum, self.maximum, self.min_open)}",
                      param, ctx)
        return number


class BoundedInt(click.ParamType):
    """A click option type for integers within bounds, with a default upper bound (``2**63 - 1``) so a huge
    number is refused by the parser instead of overflowing deep in torch."""

    name = "integer"

    def __init__(self, minimum: Optional[int] = None, maximum: Optional[int] = MAX_SEED):
        self.minimum, self.maximum = minimum, maximum

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = int(str(value).strip(), 0) if str(value).strip().lower().startswith("0x") else int(value)
            except (TypeError, ValueError):
                self.fail(f"{value!r} is not a whole number", param, ctx)
        if (self.minimum is not None and number < self.minimum) or (self.maximum is not None and number > self.maximum):
            self.fail(f"{number} is out of range: it must be {_bounds(self.minimum, self.maximum, False)}", param, ctx)
        return number
