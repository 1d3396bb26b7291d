-- Position management (issue 13): trader settings, the platform's trade tables where they do not
-- exist yet, the columns the monitor adds to `positions`, and the platform's planned
-- `position_management_decisions`. Beside the platform's own tables every CREATE is a no-op.

-- Trader settings for position management, each with its default:
--   management_interval      NULL  -> the signal's own interval
--   use_trailing_stop        false
--   trailing_stop_distance   NULL  (percent below the best price; needed with use_trailing_stop)
--   partial_take_profit_levels '[]' (cumulative percents of the size taken at each target, e.g. [25, 50, 75];
--                                    empty: the first target closes everything)
--   max_loss_per_position    NULL  (percent of the entry; NULL: no such limit)
--   max_consecutive_losses   NULL  (positions closed at a loss in a row that pause the trader; NULL: never)
--   max_position_duration    7 days
--   paper_stake              1000  (quote currency per paper trade)
--   paused / paused_reason   false / NULL (the intake starts no monitor for a paused trader)
ALTER TABLE traders ADD COLUMN IF NOT EXISTS management_interval text;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS use_trailing_stop boolean NOT NULL DEFAULT false;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS trailing_stop_distance numeric(6, 3);
ALTER TABLE traders ADD COLUMN IF NOT EXISTS partial_take_profit_levels jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS max_loss_per_position numeric(6, 3);
ALTER TABLE traders ADD COLUMN IF NOT EXISTS max_consecutive_losses integer;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS max_position_duration interval NOT NULL DEFAULT interval '7 days';
ALTER TABLE traders ADD COLUMN IF NOT EXISTS paper_stake numeric(20, 8) NOT NULL DEFAULT 1000;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS paused boolean NOT NULL DEFAULT false;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS paused_reason text;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS paused_at timestamptz;
-- Positions closed at a loss in a row, kept by the position workflow's close (reset by a win).
ALTER TABLE traders ADD COLUMN IF NOT EXISTS consecutive_losses integer NOT NULL DEFAULT 0;

ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_management_interval_check;
ALTER TABLE traders ADD CONSTRAINT traders_management_interval_check CHECK (management_interval IS NULL
    OR management_interval IN ('1s', '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h',
                               '1d', '3d', '1w'));
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_trailing_stop_check;
ALTER TABLE traders ADD CONSTRAINT traders_trailing_stop_check CHECK (
    (trailing_stop_distance IS NULL OR (trailing_stop_distance > 0 AND trailing_stop_distance < 100))
    AND (NOT use_trailing_stop OR trailing_stop_distance IS NOT NULL));
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_partial_take_profit_levels_check;
ALTER TABLE traders ADD CONSTRAINT traders_partial_take_profit_levels_check
    CHECK (jsonb_typeof(partial_take_profit_levels) = 'array' AND jsonb_array_length(partial_take_profit_levels) <= 10);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_max_loss_per_position_check;
ALTER TABLE traders ADD CONSTRAINT traders_max_loss_per_position_check
    CHECK (max_loss_per_position IS NULL OR (max_loss_per_position > 0 AND max_loss_per_position <= 100));
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_max_consecutive_losses_check;
ALTER TABLE traders ADD CONSTRAINT traders_max_consecutive_losses_check
    CHECK (max_consecutive_losses IS NULL OR max_consecutive_losses >= 1);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_max_position_duration_check;
ALTER TABLE traders ADD CONSTRAINT traders_max_position_duration_check CHECK (max_position_duration > interval '0');
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_paper_stake_check;
ALTER TABLE traders ADD CONSTRAINT traders_paper_stake_check CHECK (paper_stake > 0);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_consecutive_losses_check;
ALTER TABLE traders ADD CONSTRAINT traders_consecutive_losses_check CHECK (consecutive_losses >= 0);

-- The platform's trade tables (its migration 002_create_exchange_accounts), for a fresh database.
CREATE TABLE IF NOT EXISTS orders (
    id text PRIMARY KEY,
    signal_id text,
    exchange_account_id uuid,
    user_id uuid NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    type text NOT NULL CHECK (type IN ('market', 'limit', 'stop', 'stop_limit')),
    status text NOT NULL CHECK (status IN ('pending', 'open', 'closed', 'canceled', 'expired', 'rejected')),
    price numeric(20, 8),
    average_price numeric(20, 8),
    quantity numeric(20, 8) NOT NULL,
    filled numeric(20, 8),
    remaining numeric(20, 8),
    cost numeric(20, 8),
    fee_currency text,
    fee_cost numeric(20, 8),
    metadata jsonb,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS positions (
    id text PRIMARY KEY,
    exchange_account_id uuid,
    user_id uuid NOT NULL,
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('long', 'short')),
    contracts numeric(20, 8) NOT NULL,
    entry_price numeric(20, 8) NOT NULL,
    mark_price numeric(20, 8),
    liquidation_price numeric(20, 8),
    unrealized_pnl numeric(20, 8),
    realized_pnl numeric(20, 8),
    percentage numeric(10, 4),
    margin numeric(20, 8),
    maintenance_margin numeric(20, 8),
    margin_ratio numeric(10, 4),
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

-- What the platform's `positions` lacks for managed positions.
ALTER TABLE positions ADD COLUMN IF NOT EXISTS signal_id uuid;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT 'open';
ALTER TABLE positions ADD COLUMN IF NOT EXISTS stop_loss numeric(20, 8);
ALTER TABLE positions ADD COLUMN IF NOT EXISTS take_profit jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS closed_at timestamptz;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS close_reason text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS exit_price numeric(20, 8);
ALTER TABLE positions ADD COLUMN IF NOT EXISTS mode text NOT NULL DEFAULT 'paper';
-- The size at the entry (contracts shrinks with each partial exit) and all fees paid.
ALTER TABLE positions ADD COLUMN IF NOT EXISTS initial_contracts numeric(20, 8);
ALTER TABLE positions ADD COLUMN IF NOT EXISTS fees_paid numeric(20, 8) NOT NULL DEFAULT 0;
ALTER TABLE positions DROP CONSTRAINT IF EXISTS positions_status_check;
ALTER TABLE positions ADD CONSTRAINT positions_status_check CHECK (status IN ('open', 'closed'));
ALTER TABLE positions DROP CONSTRAINT IF EXISTS positions_mode_check;
ALTER TABLE positions ADD CONSTRAINT positions_mode_check CHECK (mode IN ('paper', 'live'));
ALTER TABLE positions DROP CONSTRAINT IF EXISTS positions_take_profit_check;
ALTER TABLE positions ADD CONSTRAINT positions_take_profit_check CHECK (jsonb_typeof(take_profit) = 'array');
-- One managed position per signal (rows of the platform's executor have no signal and are not concerned).
CREATE UNIQUE INDEX IF NOT EXISTS positions_signal_id_key ON positions (signal_id) WHERE signal_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS orders_signal_id_idx ON orders (signal_id);

-- Planned by the platform; one row per processed candle of a position, written exactly once.
CREATE TABLE IF NOT EXISTS position_management_decisions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    position_id text NOT NULL,
    signal_id uuid,
    trader_id uuid,
    user_id uuid,
    "timestamp" timestamptz NOT NULL DEFAULT now(),
    current_pnl numeric(20, 8),
    current_pnl_pct numeric(10, 4),
    position_size numeric(20, 8),
    action text NOT NULL CHECK (action IN ('hold', 'adjust_sl', 'adjust_tp', 'reduce', 'close')),
    confidence numeric(5, 2) CHECK (confidence IS NULL OR (confidence >= 0 AND confidence <= 100)),
    reasoning text,
    action_details jsonb,
    market_price numeric(20, 8),
    indicators jsonb,
    risk_assessment jsonb,
    raw_ai_response text,
    analysis_latency_ms integer,
    tokens_used integer,
    model_name text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
-- The candle each decision was taken on: the database refuses a second row for one (position, candle).
ALTER TABLE position_management_decisions ADD COLUMN IF NOT EXISTS candle_open_time timestamptz;
CREATE UNIQUE INDEX IF NOT EXISTS position_management_decisions_position_candle_key
    ON position_management_decisions (position_id, candle_open_time);
CREATE INDEX IF NOT EXISTS position_management_decisions_signal_id_idx ON position_management_decisions (signal_id);

-- Like every table the platform owns: row-level security on (the service role and the owner bypass it).
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
ALTER TABLE positions ENABLE ROW LEVEL SECURITY;
ALTER TABLE position_management_decisions ENABLE ROW LEVEL SECURITY;
