"""Who is on the elite tier (docs/contracts/platform.md): an active elite subscription not
past its `expires_at`, or an elite `user_profiles.subscription_tier` where that column exists.
Both case-insensitive (old profile rows are upper case). Pure: the intake's query supplies the values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

ELIGIBLE_TIER = "elite"
ACTIVE = "active"


@dataclass(frozen=True)
class Subscription:
    tier: str | None
    status: str | None
    expires_at: datetime | None


def _norm(value: str | None) -> str:
    return (value or "").strip().lower()


def subscription_is_elite(sub: Subscription | None, now: datetime) -> bool:
    return (
        sub is not None
        and _norm(sub.tier) == ELIGIBLE_TIER
        and _norm(sub.status) == ACTIVE
        and (sub.expires_at is None or sub.expires_at > now)
    )


def describe_subscription(sub: Subscription | None, now: datetime) -> str:
    if sub is None or sub.tier is None:
        return "no subscription"
    state = _norm(sub.status) or "no status"
    if sub.expires_at is not None and sub.expires_at <= now:
        state = f"expired {sub.expires_at:%Y-%m-%d %H:%M} UTC"
    return f"subscription {_norm(sub.tier)}, {state}"


def tier_problem(
    sub: Subscription | None, profile_tier: str | None, has_profile_tier: bool, now: datetime
) -> str | None:
    """Why the owner is not elite, or None when they are."""
    if subscription_is_elite(sub, now):
        return None
    if has_profile_tier and _norm(profile_tier) == ELIGIBLE_TIER:
        return None
    profile = f", profile tier {_norm(profile_tier) or 'unset'}" if has_profile_tier else ""
    if sub is not None and _norm(sub.tier) == ELIGIBLE_TIER:
        return f"the trader's owner has no active elite subscription ({describe_subscription(sub, now)}{profile})"
    # The tier a person would name: the profile's where it exists (what the app shows), else the subscription's.
    shown = _norm(profile_tier) if has_profile_tier and profile_tier else _norm(sub.tier if sub else None)
    return (
        f"the trader's owner is on the {shown or 'unset'} tier, not {ELIGIBLE_TIER} ({describe_subscription(sub, now)})"
    )
