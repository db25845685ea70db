"""Capped exponential backoff with full jitter, for every retry loop in the service."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays that grow ``factor`` times per failure up to ``cap``, each drawn with jitter.

    Full jitter (a uniform draw between ``base/2`` and the current ceiling) keeps
    two instances that failed together from retrying in lockstep.
    """

    base: float = 0.1
    cap: float = 5.0
    factor: float = 2.0
    attempts: int = field(default=0, init=False)

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the failure."""
        # The exponent is capped so a long outage cannot overflow the float.
        ceiling = min(self.cap, self.base * (self.factor ** min(self.attempts, 32)))
        self.attempts += 1
        return random.uniform(min(self.base / 2, ceiling), ceiling)

    def delay_for(self, attempts: int) -> float:
        """The delay after ``attempts`` failures, when the count lives elsewhere (a database row)."""
        ceiling = min(self.cap, self.base * (self.factor ** min(max(attempts - 1, 0), 32)))
        return random.uniform(min(self.base / 2, ceiling), ceiling)

    def reset(self) -> None:
        """Start again from the base delay after a success."""
        self.attempts = 0
