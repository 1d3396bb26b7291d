"""Who the product is switched on for: the rollout ladder (docs/rollout.md). Pure: no I/O.

The ladder is cumulative, so each step keeps everyone the step before it let in:
`off` (nobody) → `traders` (the allow-listed traders: test signals) → `users` (plus every trader
of the allow-listed users: a canary) → `percent` (plus that percentage of all users, by a stable
hash of the user id) → `all`. The same ladder, in its own row, gates live orders (runtime/live_rollout).
The rollout narrows who is monitored; it never widens it: a signal must first be eligible
(auto_analyze_signals, elite owner, trader not paused) and only then is it asked about."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Literal, get_args

Mode = Literal["off", "traders", "users", "percent", "all"]
MODES: tuple[Mode, ...] = get_args(Mode)
# Percent to two decimals: 10,000 buckets of users.
BUCKETS = 10_000
NOT_IN_ROLLOUT = "not in rollout"


def ineligible_reason(mode: Mode) -> str:
    """The reason written after `ineligible: ` in signals.monitor_intake (an interface)."""
    return f"{NOT_IN_ROLLOUT} ({mode})"


def user_bucket(user_id: object) -> int:
    """0..9999, fixed per user for ever: SHA-256 of the canonical uuid text. A user in at 10 %
    (bucket < 1000) is in at every larger percentage."""
    text = str(uuid.UUID(str(user_id)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") % BUCKETS


@dataclass(frozen=True)
class Rollout:
    mode: Mode = "all"
    trader_ids: frozenset[str] = field(default_factory=frozenset)
    user_ids: frozenset[str] = field(default_factory=frozenset)
    percent: Decimal = Decimal(0)
    revision: int = 0

    def admits(self, trader_id: object, user_id: object) -> bool:
        if self.mode == "all":
            return True
        if self.mode == "off":
            return False
        if trader_id is not None and str(trader_id) in self.trader_ids:
            return True
        if self.mode == "traders":
            return False
        if user_id is not None and str(user_id) in self.user_ids:
            return True
        if self.mode == "users" or user_id is None:
            return False
        return user_bucket(user_id) < int(self.percent * BUCKETS / 100)

    def why_not(self, trader_id: object, user_id: object) -> str | None:
        """None when admitted, else the reason (`not in rollout (<mode>)`)."""
        return None if self.admits(trader_id, user_id) else ineligible_reason(self.mode)

    def describe(self) -> str:
        parts = [self.mode + (f" {format_percent(self.percent)} %" if self.mode == "percent" else "")]
        if self.mode in ("traders", "users", "percent"):
            parts.append(f"{len(self.trader_ids)} trader(s) allowed")
        if self.mode in ("users", "percent"):
            parts.append(f"{len(self.user_ids)} user(s) allowed")
        return ", ".join(parts)


def format_percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


class RolloutError(ValueError):
    """A rollout value that cannot be used (a usage error for commands, exit 2 for settings)."""


def parse_percent(raw: object) -> Decimal:
    try:
        value = Decimal(str(raw))
    except ArithmeticError:
        raise RolloutError(f"percent must be a number from 0 to 100, got {raw!r}") from None
    if not value.is_finite() or not 0 <= value <= 100 or value != value.quantize(Decimal("0.01")):
        raise RolloutError(f"percent must be from 0 to 100 with at most two decimals, got {raw!r}")
    return value


def parse_seed(raw: str) -> Rollout:
    """SIGNAL_MONITOR_ROLLOUT: the rollout written when the table holds none yet (`all`, `off`,
    `traders`, `users`, `percent:N`). The lists start empty; operators fill them with the CLI."""
    text = raw.strip().lower()
    mode, _, pct = text.partition(":")
    if mode not in MODES:
        raise RolloutError(f"must be one of off, traders, users, percent:N, all; got {raw!r}")
    if mode == "percent":
        if not pct:
            raise RolloutError(f"percent needs its value, e.g. percent:10; got {raw!r}")
        return Rollout(mode="percent", percent=parse_percent(pct))
    if pct:
        raise RolloutError(f"only percent takes a value (percent:N); got {raw!r}")
    return Rollout(mode=mode)


def with_mode(r: Rollout, mode: str, percent: Decimal | None) -> Rollout:
    if mode not in MODES:
        raise RolloutError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "percent" and percent is None and r.mode != "percent":
        raise RolloutError("set percent needs --percent N")
    if mode != "percent" and percent is not None:
        raise RolloutError("--percent applies to the percent mode only")
    return replace(r, mode=mode, percent=percent if percent is not None else r.percent)


def allowing(r: Rollout, *, trader: str | None = None, user: str | None = None, allow: bool = True) -> Rollout:
    """The rollout with a trader or user id added to (allow) or removed from (deny) its list."""
    traders, users = set(r.trader_ids), set(r.user_ids)
    for value, target in ((trader, traders), (user, users)):
        if value is None:
            continue
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            raise RolloutError(f"not a uuid: {value!r}") from None
        if allow:
            target.add(canonical)
        else:
            target.discard(canonical)
    return replace(r, trader_ids=frozenset(traders), user_ids=frozenset(users))


# The platform's ramp (domain.md): test traders, one canary user, then 10/25/50/100 % of elite users.
LADDER_PERCENTS = (Decimal(10), Decimal(25), Decimal(50))


def ladder(r: Rollout) -> list[tuple[str, Rollout]]:
    """Every step of the ladder with this rollout's lists, for a dry run: (label, rollout)."""
    steps: list[tuple[str, Rollout]] = [("off", replace(r, mode="off")), ("traders", replace(r, mode="traders"))]
    steps.append(("users", replace(r, mode="users")))
    for pct in LADDER_PERCENTS:
        steps.append((f"percent {pct} %", replace(r, mode="percent", percent=pct)))
    steps.append(("all", replace(r, mode="all")))
    return steps
