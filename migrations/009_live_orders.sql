-- Live orders (issue 22): the platform's exchange accounts where they do not exist yet, the
-- trader's account, per-user risk limits with the kill switch, and what a live position records.
-- Beside the platform's own tables every CREATE is a no-op.

-- The platform's exchange accounts (its migration 002_create_exchange_accounts). The monitor never
-- reads api_key/api_secret: the worker's keys file holds the credentials (docs/live-orders.md).
CREATE TABLE IF NOT EXISTS exchange_accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid NOT NULL,
    name text NOT NULL DEFAULT '',
    exchange text NOT NULL,
    is_testnet boolean DEFAULT false,
    api_key text NOT NULL,
    api_secret text NOT NULL,
    password text,
    subaccount text,
    is_active boolean DEFAULT true,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);
ALTER TABLE exchange_accounts ADD COLUMN IF NOT EXISTS is_active boolean DEFAULT true;
ALTER TABLE exchange_accounts ENABLE ROW LEVEL SECURITY;

-- The account a trader's live positions use (one of the third switch; see docs/live-orders.md).
ALTER TABLE traders ADD COLUMN IF NOT EXISTS exchange_account_id uuid
    REFERENCES exchange_accounts (id) ON DELETE SET NULL;

-- The platform's planned risk limits, per user and optionally per trader (trader_id NULL: all of
-- the user's traders; user_id NULL as well: everyone, used by `trading pause --all`). NULL limit:
-- no such limit. Amounts are in the quote asset.
CREATE TABLE IF NOT EXISTS risk_limits (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid,
    trader_id uuid,
    max_position_size numeric(20, 8) CHECK (max_position_size IS NULL OR max_position_size > 0),
    max_exposure numeric(20, 8) CHECK (max_exposure IS NULL OR max_exposure > 0),
    daily_loss_limit numeric(20, 8) CHECK (daily_loss_limit IS NULL OR daily_loss_limit > 0),
    require_stop_loss boolean NOT NULL DEFAULT false,
    trading_paused boolean NOT NULL DEFAULT false,
    paused_reason text,
    paused_at timestamptz,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    CHECK (trader_id IS NULL OR user_id IS NOT NULL)
);
CREATE UNIQUE INDEX IF NOT EXISTS risk_limits_scope_key ON risk_limits (
    coalesce(user_id, '00000000-0000-0000-0000-000000000000'::uuid),
    coalesce(trader_id, '00000000-0000-0000-0000-000000000000'::uuid)
);
ALTER TABLE risk_limits ENABLE ROW LEVEL SECURITY;

-- A live position's exchange account (the platform's column), and its resting protective order.
ALTER TABLE positions ADD COLUMN IF NOT EXISTS protective_order_id text;
ALTER TABLE positions ADD COLUMN IF NOT EXISTS metadata jsonb NOT NULL DEFAULT '{}'::jsonb;
-- Live order rows are written before their request leaves ('pending'), so a crash between sending
-- and recording is found again by its client id.
CREATE INDEX IF NOT EXISTS orders_open_live_idx ON orders (((metadata ->> 'position_id')))
    WHERE status IN ('pending', 'open');
