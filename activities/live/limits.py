"""The platform's per-user risk limits (`risk_limits`) and the kill switch, as one rule: an entry
that would break a limit is refused with the reason, before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class RiskLimits:
    max_position_size: Decimal | None = None
    max_exposure: Decimal | None = None
    daily_loss_limit: Decimal | None = None
    require_stop_loss: bool = False
    trading_paused: bool = False
    paused_reason: str | None = None

    @classmethod
    def merged(cls, rows: list[dict]) -> RiskLimits:
        """Rows from the widest scope (everyone) to the narrowest (the trader): a narrower limit
        wins; a pause or a stop-loss requirement anywhere holds."""
        out: dict = {}
        paused, reason, require = False, None, False
        for row in rows:
            for name in ("max_position_size", "max_exposure", "daily_loss_limit"):
                if row.get(name) is not None:
                    out[name] = row[name]
            require = require or bool(row.get("require_stop_loss"))
            if row.get("trading_paused"):
                paused, reason = True, reason or row.get("paused_reason")
        return cls(**out, require_stop_loss=require, trading_paused=paused, paused_reason=reason)


def refusal(
    limits: RiskLimits,
    *,
    notional: Decimal,
    open_exposure: Decimal,
    loss_today: Decimal,
    has_stop_loss: bool,
) -> str | None:
    """Why this entry must not be sent, or None. `loss_today`: realized losses since 00:00 UTC
    (positive number)."""
    if limits.trading_paused:
        return f"trading is paused{': ' + limits.paused_reason if limits.paused_reason else ''}"
    if limits.require_stop_loss and not has_stop_loss:
        return "risk limit require_stop_loss: the entry has no stop-loss"
    if limits.max_position_size is not None and notional > limits.max_position_size:
        return f"risk limit max_position_size: {notional:f} is over {limits.max_position_size:f}"
    if limits.max_exposure is not None and open_exposure + notional > limits.max_exposure:
        return f"risk limit max_exposure: {open_exposure:f} open + {notional:f} is over {limits.max_exposure:f}"
    if limits.daily_loss_limit is not None and loss_today >= limits.daily_loss_limit:
        return f"risk limit daily_loss_limit: {loss_today:f} lost today, limit {limits.daily_loss_limit:f}"
    return None
