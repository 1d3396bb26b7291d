-- The rollout (docs/rollout.md): who is monitored and who may place live orders, one row each,
-- read by every intake at each sweep and notification so an operator changes it without a restart;
-- the reason a running monitor is asked to stop; the shadow mode's own table.

-- One row (id = true). No row yet: the first process that reads it writes SIGNAL_MONITOR_ROLLOUT's
-- seed (`all` unless set), so a database migrated today keeps monitoring every eligible signal.
CREATE TABLE IF NOT EXISTS monitor_rollout (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    mode text NOT NULL CHECK (mode IN ('off', 'traders', 'users', 'percent', 'all')),
    trader_ids uuid[] NOT NULL DEFAULT '{}',
    user_ids uuid[] NOT NULL DEFAULT '{}',
    percent numeric(5, 2) NOT NULL DEFAULT 0 CHECK (percent >= 0 AND percent <= 100),
    revision bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

-- The same ladder for live orders, separately (no row: `off`). NULL caps: the step's defaults
-- from the platform's plan (runtime/live_rollout.py).
CREATE TABLE IF NOT EXISTS live_rollout (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    mode text NOT NULL CHECK (mode IN ('off', 'traders', 'users', 'percent', 'all')),
    trader_ids uuid[] NOT NULL DEFAULT '{}',
    user_ids uuid[] NOT NULL DEFAULT '{}',
    percent numeric(5, 2) NOT NULL DEFAULT 0 CHECK (percent >= 0 AND percent <= 100),
    max_order_usd numeric(20, 2) CHECK (max_order_usd >= 0),
    max_total_usd numeric(20, 2) CHECK (max_total_usd >= 0),
    revision bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by text
);

-- Every change (the CLI's or a hand-written UPDATE) bumps the revision, by which intakes notice a
-- change (widening re-examines the signals left out), and is NOTIFYed so they act on it at once.
CREATE OR REPLACE FUNCTION signal_monitor_rollout_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.revision := OLD.revision + 1;
        NEW.updated_at := now();
    END IF;
    PERFORM pg_notify('signal_monitor_rollout', TG_TABLE_NAME);
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS signal_monitor_rollout_changed ON monitor_rollout;
CREATE TRIGGER signal_monitor_rollout_changed
    BEFORE INSERT OR UPDATE ON monitor_rollout
    FOR EACH ROW EXECUTE FUNCTION signal_monitor_rollout_changed();
DROP TRIGGER IF EXISTS signal_monitor_rollout_changed ON live_rollout;
CREATE TRIGGER signal_monitor_rollout_changed
    BEFORE INSERT OR UPDATE ON live_rollout
    FOR EACH ROW EXECUTE FUNCTION signal_monitor_rollout_changed();

-- Written by the intake just before it cancels a running monitor whose signal left (trader's
-- auto_analyze_signals off, owner no longer elite, out of the rollout); finish_signal takes it as
-- the `cancelled` signal's monitor_reason instead of "cancelled by operator".
ALTER TABLE signals ADD COLUMN IF NOT EXISTS monitor_leave_reason text;

-- Widening re-examines the signals the rollout left out (still within their window).
CREATE INDEX IF NOT EXISTS signals_monitor_not_in_rollout_idx
    ON signals ("timestamp" DESC) WHERE monitor_intake LIKE 'ineligible: not in rollout%';
-- Each sweep checks that the signals it started are still wanted.
CREATE INDEX IF NOT EXISTS signals_monitor_started_idx
    ON signals ("timestamp" DESC) WHERE monitor_intake = 'started';

-- Shadow mode (SIGNAL_MONITOR_SHADOW=on): the monitor's analyses, beside signal_analyses and
-- never in it, with the platform's own decision for the same signal when it has one.
CREATE TABLE IF NOT EXISTS shadow_analyses (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id uuid NOT NULL,
    trader_id uuid,
    user_id uuid,
    analysis_number integer NOT NULL,
    candle_open_time timestamptz,
    price numeric,
    decision text NOT NULL,
    monitor_decision text,
    confidence numeric(5, 2),
    reasoning text,
    key_levels jsonb NOT NULL DEFAULT '{}',
    trade_plan jsonb NOT NULL DEFAULT '{}',
    technical_indicators jsonb,
    raw_ai_response text,
    analysis_latency_ms integer,
    gemini_tokens_used integer,
    model_name text,
    platform_analysis_id uuid,
    platform_decision text,
    platform_confidence numeric(5, 2),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX IF NOT EXISTS shadow_analyses_signal_number_key ON shadow_analyses (signal_id, analysis_number);
CREATE INDEX IF NOT EXISTS shadow_analyses_created_idx ON shadow_analyses (created_at);

-- Shadow mode's own record of the intake's decisions and the shadow monitors' ends (the intake
-- writes nothing to `signals` in shadow mode).
CREATE TABLE IF NOT EXISTS shadow_intake (
    signal_id uuid PRIMARY KEY,
    decision text NOT NULL,
    decided_at timestamptz NOT NULL DEFAULT now(),
    end_status text,
    end_reason text,
    ended_at timestamptz
);
CREATE INDEX IF NOT EXISTS shadow_intake_started_idx ON shadow_intake (decided_at) WHERE decision = 'started' AND ended_at IS NULL;

-- As on the monitor's other tables (005, 007): row-level security on, the worker role sees all.
ALTER TABLE monitor_rollout ENABLE ROW LEVEL SECURITY;
ALTER TABLE live_rollout ENABLE ROW LEVEL SECURITY;
ALTER TABLE shadow_analyses ENABLE ROW LEVEL SECURITY;
ALTER TABLE shadow_intake ENABLE ROW LEVEL SECURITY;
DO $$
DECLARE
    monitor_table text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signal_monitor_worker') THEN
        RETURN;
    END IF;
    FOREACH monitor_table IN ARRAY ARRAY['monitor_rollout', 'live_rollout', 'shadow_analyses', 'shadow_intake'] LOOP
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO signal_monitor_worker', monitor_table);
        IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = monitor_table
                       AND policyname = 'signal-monitor worker') THEN
            EXECUTE format('CREATE POLICY "signal-monitor worker" ON %I FOR ALL TO signal_monitor_worker '
                           'USING (true) WITH CHECK (true)', monitor_table);
        END IF;
    END LOOP;
END;
$$;

-- Leaving at once: a trader's auto-analysis turned off, an owner's tier or subscription changed
-- NOTIFY the intakes on the rollout's channel, and they look at their running monitors right away
-- instead of at their next sweep. AFTER triggers that only notify: the platform's rows are not
-- touched. The profile tier exists only in production databases (domain notes): guarded.
CREATE OR REPLACE FUNCTION signal_monitor_owner_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('signal_monitor_rollout', TG_TABLE_NAME);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS signal_monitor_owner_changed ON traders;
CREATE TRIGGER signal_monitor_owner_changed
    AFTER UPDATE ON traders
    FOR EACH ROW
    WHEN (OLD.auto_analyze_signals IS DISTINCT FROM NEW.auto_analyze_signals OR OLD.user_id IS DISTINCT FROM NEW.user_id)
    EXECUTE FUNCTION signal_monitor_owner_changed();

DROP TRIGGER IF EXISTS signal_monitor_owner_changed ON user_subscriptions;
CREATE TRIGGER signal_monitor_owner_changed
    AFTER UPDATE OF tier, status, expires_at, user_id OR DELETE ON user_subscriptions
    FOR EACH ROW EXECUTE FUNCTION signal_monitor_owner_changed();

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM information_schema.columns
               WHERE table_schema = current_schema() AND table_name = 'user_profiles'
                 AND column_name = 'subscription_tier') THEN
        EXECUTE 'DROP TRIGGER IF EXISTS signal_monitor_owner_changed ON user_profiles';
        EXECUTE 'CREATE TRIGGER signal_monitor_owner_changed AFTER UPDATE OF subscription_tier ON user_profiles '
                'FOR EACH ROW EXECUTE FUNCTION signal_monitor_owner_changed()';
    END IF;
END;
$$;
