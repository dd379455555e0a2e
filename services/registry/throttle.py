"""Brakes on guessing passwords at `POST /registry/v1/auth/token`, per username and per
client address (in-process: each registry process counts its own).

Each key keeps a failure score that halves every `half_life` without failures. Past the
free failures, every further failure locks the key for a time that doubles, up to a cap:

- per username: 5 free, then 1 s, 2 s, 4 s ... capped at 5 minutes;
- per client address: 20 free, then 1 s, 2 s ... capped at 15 minutes;
- half-life of the score: 10 minutes (so 5 failures are forgotten in about half an hour).

While a key is locked the endpoint answers 429 with `Retry-After`, without checking the
password (that costs an argon2 hash) and without counting the attempt, so hammering a
locked key does not lengthen its lock. Guessing one name as fast as allowed settles, with
the decay, at about one guess a minute or two. A stranger can delay a user's login by at most the
username cap at a time, never lock the account for good, and an address the user signed in
from before is exempt from the username lock (only its own address lock applies). A
correct password clears the username's score; the address keeps its own.
"""

import math
from dataclasses import dataclass, field


@dataclass
class _Score:
    value: float = 0.0
    at: float = 0.0  # when `value` was last brought up to date
    locked_until: float = 0.0


@dataclass
class Brake:
    free: int
    base_seconds: float
    cap_seconds: float
    half_life_seconds: float
    max_keys: int = 100_000
    scores: dict[str, _Score] = field(default_factory=dict)

    def _decayed(self, score: _Score, now: float) -> float:
        elapsed = max(0.0, now - score.at)
        return score.value * 0.5 ** (elapsed / self.half_life_seconds)

    def retry_after(self, key: str, now: float) -> float:
        score = self.scores.get(key)
        return max(0.0, score.locked_until - now) if score else 0.0

    def fail(self, key: str, now: float) -> None:
        score = self.scores.get(key)
        if score is None:
            if len(self.scores) >= self.max_keys:  # forget the oldest key, not the newest
                self.scores.pop(next(iter(self.scores)))
            score = self.scores[key] = _Score()
        score.value, score.at = self._decayed(score, now) + 1.0, now
        excess = score.value - self.free
        if excess > 0:
            lock = min(self.cap_seconds, self.base_seconds * 2 ** (math.ceil(excess) - 1))
            score.locked_until = now + lock

    def clear(self, key: str) -> None:
        self.scores.pop(key, None)


class LoginThrottle:
    def __init__(
        self,
        *,
        user_free: int = 5,
        user_cap_seconds: float = 300,
        address_free: int = 20,
        address_cap_seconds: float = 900,
        half_life_seconds: float = 600,
    ):
        self.users = Brake(user_free, 1.0, user_cap_seconds, half_life_seconds)
        self.addresses = Brake(address_free, 1.0, address_cap_seconds, half_life_seconds)
        self.known: dict[tuple[str, str], None] = {}  # (username, address) that signed in

    def retry_after(self, username: str, address: str, now: float) -> int:
        """Seconds to wait before trying again (0: go ahead), whole and at least 1."""
        wait = self.addresses.retry_after(address, now)
        if (username, address) not in self.known:
            wait = max(wait, self.users.retry_after(username, now))
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str, now: float) -> None:
        self.users.fail(username, now)
        self.addresses.fail(address, now)

    def succeeded(self, username: str, address: str) -> None:
        self.users.clear(username)
        if len(self.known) >= 100_000:
            self.known.pop(next(iter(self.known)))
        self.known[(username, address)] = None
