"""The local exchange's books: symbols with Binance's filters, accounts with balances, orders and
trades, and a matcher driven by prices (the replayed candles). No I/O: `spot_api` serves it.

Binance's rules kept here: a client order id is unique only among the account's OPEN orders (a
filled or cancelled id is accepted again); amounts must sit on the symbol's step and tick and
reach its minimum notional (-1013); a stop on the wrong side of the market is refused ("would
trigger immediately"); the commission is taken in the asset received (buying BTC pays its fee in
BTC); a resting sell locks its base asset."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal

CLIENT_ID_RE = re.compile(r"^[a-zA-Z0-9\-_]{1,36}$")
OPEN_STATUSES = ("NEW", "PARTIALLY_FILLED")
EIGHT = Decimal("0.00000001")


class ExchangeRefusal(Exception):
    """An error answer in Binance's shape: HTTP status, code and message."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(msg)
        self.code, self.msg, self.status = code, msg, status


def text(value: Decimal) -> str:
    return f"{value.quantize(EIGHT):f}"


@dataclass
class SymbolInfo:
    symbol: str
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    max_qty: Decimal = Decimal("9000")
    min_notional: Decimal = Decimal("5")
    order_types: tuple[str, ...] = (
        "LIMIT",
        "LIMIT_MAKER",
        "MARKET",
        "STOP_LOSS_LIMIT",
        "TAKE_PROFIT_LIMIT",
    )

    def exchange_info(self) -> dict:
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": list(self.order_types),
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": text(self.tick_size),
                    "maxPrice": "1000000.00000000",
                    "tickSize": text(self.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": text(self.min_qty),
                    "maxQty": text(self.max_qty),
                    "stepSize": text(self.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": "0.00000000",
                    "maxQty": text(self.max_qty),
                    "stepSize": "0.00000000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": text(self.min_notional),
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }


def default_symbols() -> dict[str, SymbolInfo]:
    return {
        s.symbol: s
        for s in (
            SymbolInfo("BTCUSDT", "BTC", "USDT"),
            SymbolInfo("ETHUSDT", "ETH", "USDT", step_size=Decimal("0.0001"), min_qty=Decimal("0.0001")),
            SymbolInfo("SOLUSDT", "SOL", "USDT", step_size=Decimal("0.001"), min_qty=Decimal("0.001")),
        )
    }


@dataclass
class Trade:
    id: int
    order_id: int
    order_list_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    maker: bool

    def fill(self) -> dict:
        return {
            "price": text(self.price),
            "qty": text(self.qty),
            "commission": text(self.commission),
            "commissionAsset": self.commission_asset,
            "tradeId": self.id,
        }

    def my_trade(self) -> dict:
        return {
            "symbol": self.symbol,
            "id": self.id,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "price": text(self.price),
            "qty": text(self.qty),
            "quoteQty": text(self.price * self.qty),
            "commission": text(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.side == "BUY",
            "isMaker": self.maker,
            "isBestMatch": True,
        }


@dataclass
class Order:
    account: str
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    orig_qty: Decimal
    price: Decimal = Decimal(0)
    stop_price: Decimal = Decimal(0)
    time_in_force: str = "GTC"
    status: str = "NEW"
    executed_qty: Decimal = Decimal(0)
    quote_qty: Decimal = Decimal(0)
    order_list_id: int = -1
    time: int = 0
    update_time: int = 0
    triggered: bool = False
    trades: list[Trade] = field(default_factory=list)
    # Set on an order created while the fault "the read side lags" is scheduled.
    visible_from: float = 0.0

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATUSES

    def view(self) -> dict:
        """`GET /api/v3/order`'s shape."""
        out = {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": self.order_list_id,
            "clientOrderId": self.client_order_id,
            "price": text(self.price),
            "origQty": text(self.orig_qty),
            "executedQty": text(self.executed_qty),
            "cummulativeQuoteQty": text(self.quote_qty),
            "status": self.status,
            "timeInForce": self.time_in_force,
            "type": self.type,
            "side": self.side,
            "stopPrice": text(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.update_time,
            "isWorking": self.type not in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") or self.triggered,
            "workingTime": self.time,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }
        return out

    def full(self) -> dict:
        """`POST /api/v3/order`'s FULL answer."""
        out = {k: v for k, v in self.view().items() if k not in ("time", "updateTime", "isWorking", "icebergQty")}
        out["transactTime"] = self.time
        out["fills"] = [t.fill() for t in self.trades]
        if not self.stop_price:
            out.pop("stopPrice")
        return out


@dataclass
class Account:
    api_key: str
    secret: str
    balances: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)

    def free(self, asset: str) -> Decimal:
        return self.balances.get(asset, Decimal(0)) - self.locked.get(asset, Decimal(0))

    def add(self, asset: str, amount: Decimal) -> None:
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + amount

    def lock(self, asset: str, amount: Decimal) -> None:
        self.locked[asset] = self.locked.get(asset, Decimal(0)) + amount


@dataclass
class FillPlan:
    """How the next market order fills (scheduled faults): in `parts` trades, and only
    `fraction` of it before the rest EXPIREs (no liquidity left)."""

    parts: int = 1
    fraction: Decimal = Decimal(1)


class SpotBook:
    """Every account's orders and trades on every symbol, and the last price of each symbol."""

    def __init__(self, symbols: dict[str, SymbolInfo] | None = None, taker_fee: Decimal = Decimal("0.001")):
        self.symbols = symbols or default_symbols()
        self.taker_fee = taker_fee
        self.accounts: dict[str, Account] = {}
        self.orders: list[Order] = []
        self.prices: dict[str, Decimal] = {}
        self.fill_plans: list[FillPlan] = []
        self._order_ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._list_ids = itertools.count(1)
        self._unlocked_lists: set[int] = set()

    # ---- accounts --------------------------------------------------------------------------
    def open_account(self, api_key: str, secret: str, balances: dict[str, Decimal | str | int]) -> Account:
        account = Account(api_key, secret, {k: Decimal(str(v)) for k, v in balances.items()})
        self.accounts[api_key] = account
        return account

    def info(self, symbol: str) -> SymbolInfo:
        if symbol not in self.symbols:
            raise ExchangeRefusal(-1121, "Invalid symbol.")
        return self.symbols[symbol]

    def price(self, symbol: str) -> Decimal:
        if symbol not in self.prices:
            raise ExchangeRefusal(-1013, "Market is closed.")
        return self.prices[symbol]

    # ---- queries ---------------------------------------------------------------------------
    def find(self, account: str, symbol: str, order_id: int | None, client_id: str | None, now: float) -> Order:
        """Newest order with that id (a client id can be reused once its order is no longer open)."""
        for order in reversed(self.orders):
            if order.account != account or order.symbol != symbol or order.visible_from > now:
                continue
            if (order_id is not None and order.order_id == order_id) or (
                client_id is not None and order.client_order_id == client_id
            ):
                return order
        raise ExchangeRefusal(-2013, "Order does not exist.")

    def open_orders(self, account: str, symbol: str | None, now: float) -> list[Order]:
        return [
            o
            for o in self.orders
            if o.account == account and o.open and (symbol is None or o.symbol == symbol) and o.visible_from <= now
        ]

    def all_orders(self, account: str, symbol: str) -> list[Order]:
        return [o for o in self.orders if o.account == account and o.symbol == symbol]

    def trades(self, account: str, symbol: str) -> list[Trade]:
        return [t for o in self.orders if o.account == account and o.symbol == symbol for t in o.trades]

    # ---- placing ---------------------------------------------------------------------------
    def new_client_id(self) -> str:
        return f"x-fake{next(self._order_ids)}"

    def check_client_id(self, account: str, client_id: str) -> None:
        if not CLIENT_ID_RE.match(client_id):
            raise ExchangeRefusal(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_]{1,36}$'.")  # fmt: skip
        if any(o.account == account and o.client_order_id == client_id and o.open for o in self.orders):
            raise ExchangeRefusal(-2010, "Duplicate order sent.")

    def _check_filters(self, info: SymbolInfo, qty: Decimal, price: Decimal | None, notional_price: Decimal) -> None:
        if qty < info.min_qty or qty > info.max_qty or (qty - info.min_qty) % info.step_size:
            raise ExchangeRefusal(-1013, "Filter failure: LOT_SIZE")
        if price is not None and (price <= 0 or price % info.tick_size):
            raise ExchangeRefusal(-1013, "Filter failure: PRICE_FILTER")
        if qty * notional_price < info.min_notional:
            raise ExchangeRefusal(-1013, "Filter failure: NOTIONAL")

    def place(
        self,
        account: Account,
        *,
        symbol: str,
        side: str,
        type: str,
        qty: Decimal,
        price: Decimal | None,
        stop_price: Decimal | None,
        client_id: str | None,
        time_in_force: str | None,
        now_ms: int,
        visible_from: float = 0.0,
        order_list_id: int = -1,
        shares_lock: bool = False,
    ) -> Order:
        """`shares_lock`: an OCO's second leg, selling the same coins the first leg locked."""
        info = self.info(symbol)
        if side not in ("BUY", "SELL"):
            raise ExchangeRefusal(-1100, "Illegal characters found in parameter 'side'.")
        if type not in info.order_types:
            raise ExchangeRefusal(-1116, "Invalid orderType.")
        client_id = client_id or self.new_client_id()
        self.check_client_id(account.api_key, client_id)
        last = self.price(symbol)
        needs_price = type != "MARKET"
        if needs_price and price is None:
            raise ExchangeRefusal(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if type in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"):
            if stop_price is None:
                raise ExchangeRefusal(-1102, "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.")  # fmt: skip
            if stop_price % info.tick_size:
                raise ExchangeRefusal(-1013, "Filter failure: PRICE_FILTER")
            below = (type == "STOP_LOSS_LIMIT") == (side == "SELL")
            if (below and stop_price >= last) or (not below and stop_price <= last):
                raise ExchangeRefusal(-2010, "Order would trigger immediately.")
        if type == "LIMIT_MAKER" and price is not None and ((side == "SELL" and price <= last) or (side == "BUY" and price >= last)):  # fmt: skip
            raise ExchangeRefusal(-2010, "Order would immediately match and take.")
        self._check_filters(info, qty, price if needs_price else None, price if needs_price and price else last)
        # Funds: a buy needs its quote at the price it may pay; a sell locks its base.
        if side == "BUY":
            cost = qty * (last if type == "MARKET" else (price or last))
            if account.free(info.quote) < cost:
                raise ExchangeRefusal(-2010, "Account has insufficient balance for requested action.")
        elif not shares_lock and account.free(info.base) < qty:
            raise ExchangeRefusal(-2010, "Account has insufficient balance for requested action.")
        order = Order(
            account=account.api_key,
            symbol=symbol,
            order_id=next(self._order_ids),
            client_order_id=client_id,
            side=side,
            type=type,
            orig_qty=qty,
            price=price or Decimal(0),
            stop_price=stop_price or Decimal(0),
            time_in_force=time_in_force or ("GTC" if needs_price else ""),
            time=now_ms,
            update_time=now_ms,
            visible_from=visible_from,
            order_list_id=order_list_id,
        )
        self.orders.append(order)
        if type == "MARKET":
            self._fill_market(account, order, last, now_ms)
        else:
            if side == "SELL" and not shares_lock:
                account.lock(info.base, qty)
            if type == "LIMIT" and (
                (side == "BUY" and last <= order.price) or (side == "SELL" and last >= order.price)
            ):
                self._fill(account, order, order.price, order.orig_qty, now_ms, maker=False)
        return order

    def _fill_market(self, account: Account, order: Order, price: Decimal, now_ms: int) -> None:
        plan = self.fill_plans.pop(0) if self.fill_plans else FillPlan()
        info = self.info(order.symbol)
        total = (order.orig_qty * plan.fraction / info.step_size).to_integral_value(ROUND_DOWN) * info.step_size
        if plan.parts > 1 and total > 0:
            part = (total / plan.parts / info.step_size).to_integral_value(ROUND_DOWN) * info.step_size
            pieces = [part] * (plan.parts - 1) + [total - part * (plan.parts - 1)]
        else:
            pieces = [total]
        for i, piece in enumerate(p for p in pieces if p > 0):
            # Each further piece a tick worse: several price levels taken, as a real book does.
            step = info.tick_size * i
            self._fill(account, order, price + step if order.side == "BUY" else price - step, piece, now_ms, False)
        if order.executed_qty < order.orig_qty:
            order.status = "EXPIRED"

    def _fill(self, account: Account, order: Order, price: Decimal, qty: Decimal, now_ms: int, maker: bool) -> None:
        info = self.info(order.symbol)
        received = info.base if order.side == "BUY" else info.quote
        gross = qty if order.side == "BUY" else qty * price
        commission = (gross * self.taker_fee).quantize(EIGHT)
        trade = Trade(
            next(self._trade_ids), order.order_id, order.order_list_id, order.symbol, order.side,
            price, qty, commission, received, now_ms, maker,
        )  # fmt: skip
        order.trades.append(trade)
        order.executed_qty += qty
        order.quote_qty += qty * price
        order.update_time = now_ms
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        if order.side == "BUY":
            account.add(info.quote, -qty * price)
            account.add(info.base, qty - commission)
        else:
            if order.type != "MARKET":
                self._unlock(account, order, qty)
            account.add(info.base, -qty)
            account.add(info.quote, qty * price - commission)

    # ---- cancelling ------------------------------------------------------------------------
    def cancel(self, order: Order, now_ms: int, status: str = "CANCELED") -> None:
        if not order.open:
            raise ExchangeRefusal(-2011, "Unknown order sent.")
        if order.side == "SELL":
            self._unlock(self.accounts[order.account], order, order.orig_qty - order.executed_qty)
        order.status = status
        order.update_time = now_ms

    def _unlock(self, account: Account, order: Order, qty: Decimal) -> None:
        # An OCO's legs share one lock: released once, by the first leg that fills or is cancelled.
        if order.order_list_id >= 0:
            if order.order_list_id in self._unlocked_lists:
                return
            self._unlocked_lists.add(order.order_list_id)
        account.lock(self.info(order.symbol).base, -qty)

    def siblings(self, order: Order) -> list[Order]:
        if order.order_list_id < 0:
            return []
        return [o for o in self.orders if o.order_list_id == order.order_list_id and o is not order]

    def next_list_id(self) -> int:
        return next(self._list_ids)

    # ---- the matcher ----------------------------------------------------------------------
    def trade_at(self, symbol: str, price: Decimal, now_ms: int) -> list[Order]:
        """The market traded at `price`: resting orders it reaches fill. Returns the filled orders."""
        previous = self.prices.get(symbol)
        self.prices[symbol] = price
        filled: list[Order] = []
        for order in [o for o in self.orders if o.symbol == symbol and o.open]:
            if not order.open:  # its OCO sibling filled a moment ago
                continue
            account = self.accounts[order.account]
            if order.type in ("STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT") and not order.triggered:
                below = (order.type == "STOP_LOSS_LIMIT") == (order.side == "SELL")
                if (below and price <= order.stop_price) or (not below and price >= order.stop_price):
                    order.triggered = True
                    # Binance: an OCO's stop leg triggering expires the other leg at once.
                    for other in self.siblings(order):
                        if other.open:
                            self.cancel(other, now_ms, status="EXPIRED")
                    # Crossed on the way (the last price was on the other side): it fills about
                    # at the stop; a gap fills where the market is, if the limit allows.
                    crossed = previous is not None and (previous > order.stop_price if below else previous < order.stop_price)  # fmt: skip
                    at = order.stop_price if crossed else price
                    if self._reaches(order, at):
                        self._complete(account, order, at, now_ms, filled)
                continue
            if self._reaches(order, price):
                at = order.price if order.type != "MARKET" else price
                self._complete(account, order, at, now_ms, filled)
        return filled

    @staticmethod
    def _reaches(order: Order, price: Decimal) -> bool:
        return price >= order.price if order.side == "SELL" else price <= order.price

    def _complete(self, account: Account, order: Order, at: Decimal, now_ms: int, filled: list[Order]) -> None:
        self._fill(account, order, at, order.orig_qty - order.executed_qty, now_ms, maker=True)
        filled.append(order)
        for other in self.siblings(order):
            if other.open:
                self.cancel(other, now_ms, status="EXPIRED")
