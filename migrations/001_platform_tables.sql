-- The platform's own tables, as a fresh database needs them. On the platform's database they
-- already exist, so every statement here is a no-op there (IF NOT EXISTS).
-- Columns are the platform's (see README, "Database"); keep their names.

CREATE TABLE IF NOT EXISTS user_profiles (
    id uuid PRIMARY KEY,
    subscription_tier text
);

CREATE TABLE IF NOT EXISTS traders (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id uuid,
    name text,
    enabled boolean DEFAULT true,
    filter jsonb,
    strategy jsonb,
    auto_analyze_signals boolean DEFAULT false,
    auto_execute_trades boolean DEFAULT false,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS signals (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    trader_id uuid,
    symbol text,
    interval text,
    "timestamp" timestamptz DEFAULT now(),
    price_at_signal numeric,
    change_percent_at_signal numeric,
    volume_at_signal numeric,
    indicator_data jsonb,
    status text DEFAULT 'new',
    closed_at timestamptz,
    updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS signal_analyses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id uuid,
    trader_id uuid,
    user_id uuid,
    decision text CHECK (decision IN ('enter_trade', 'bad_setup', 'wait')),
    confidence numeric(5, 2) CHECK (confidence >= 0 AND confidence <= 100),
    reasoning text,
    key_levels jsonb,
    trade_plan jsonb,
    technical_indicators jsonb,
    raw_ai_response text,
    analysis_latency_ms integer,
    gemini_tokens_used integer,
    model_name text,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now()
);

-- The platform's own index name, so this is a no-op beside the platform's table (005 renames or
-- drops the index this file created under another name before).
CREATE INDEX IF NOT EXISTS idx_signal_analyses_signal_id ON signal_analyses (signal_id);
