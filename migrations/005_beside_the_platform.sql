-- Beside the platform as it is (README, "Beside the platform"): its subscriptions table, its
-- triggers 028 and 032, its own index and row-level security.

-- The tier lives in user_subscriptions (the platform's migration 004). A fresh database gets the
-- platform's shape of it; beside the platform this is a no-op and its table is left as it is.
DO $$
DECLARE
    requester text := CASE WHEN EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                        WHERE n.nspname = 'auth' AND p.proname = 'uid' AND p.pronargs = 0)
                           THEN 'auth.uid()'
                           ELSE 'nullif(current_setting(''request.jwt.claim.sub'', true), '''')::uuid' END;
BEGIN
    IF to_regclass('user_subscriptions') IS NULL THEN
        CREATE TABLE user_subscriptions (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            user_id uuid UNIQUE,
            tier text DEFAULT 'free' CHECK (tier IN ('free', 'pro', 'elite')),
            status text DEFAULT 'active' CHECK (status IN ('active', 'cancelled', 'past_due')),
            started_at timestamptz DEFAULT now(),
            expires_at timestamptz,
            created_at timestamptz DEFAULT now(),
            updated_at timestamptz DEFAULT now()
        );
        ALTER TABLE user_subscriptions ENABLE ROW LEVEL SECURITY;
        EXECUTE format('CREATE POLICY "Users can view their own subscription" ON user_subscriptions '
                       'FOR SELECT USING (%s = user_id)', requester);
    END IF;
END;
$$;

-- Set by the monitor when it takes a signal (load_signal). From then on the monitor alone decides
-- the signal's status: see signal_monitor_keep_status below.
ALTER TABLE signals ADD COLUMN IF NOT EXISTS monitor_started_at timestamptz;

-- Trigger 032 (update_signal_status_on_analysis) sets the status from every inserted analysis
-- row, the proxy's own rows included: wait -> monitoring, enter_trade -> ready, bad_setup ->
-- expired + closed_at. Once a monitor owns a signal those writes would overwrite its decisions
-- (a late platform analysis could even turn an ended signal back to `ready`), so they are kept
-- out: an update made from inside another trigger (pg_trigger_depth() > 1: 032's UPDATE runs in
-- its trigger) that would set one of 032's three statuses on a monitored signal leaves the status
-- and closed_at as they were. Everything else (the monitor's own writes, the app, other statuses)
-- passes untouched.
CREATE OR REPLACE FUNCTION signal_monitor_keep_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1
       AND OLD.monitor_started_at IS NOT NULL
       AND NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('monitoring', 'ready', 'expired') THEN
        NEW.status := OLD.status;
        NEW.closed_at := OLD.closed_at;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS signal_monitor_keep_status ON signals;
CREATE TRIGGER signal_monitor_keep_status
    BEFORE UPDATE ON signals
    FOR EACH ROW EXECUTE FUNCTION signal_monitor_keep_status();

-- 001 used to create signal_analyses_signal_id_idx, a duplicate of the platform's
-- idx_signal_analyses_signal_id: keep exactly one, under the platform's name.
DO $$
BEGIN
    IF to_regclass('signal_analyses_signal_id_idx') IS NOT NULL THEN
        IF to_regclass('idx_signal_analyses_signal_id') IS NOT NULL THEN
            DROP INDEX signal_analyses_signal_id_idx;
        ELSE
            ALTER INDEX signal_analyses_signal_id_idx RENAME TO idx_signal_analyses_signal_id;
        END IF;
    END IF;
END;
$$;

-- The intake now also takes signals the platform's initial analysis reached first (status
-- `monitoring`, `ready`, or 032's `expired`), so its pending set is every undecided signal.
DROP INDEX IF EXISTS signals_monitor_intake_pending_idx;
CREATE INDEX IF NOT EXISTS signals_monitor_intake_undecided_idx
    ON signals ("timestamp" DESC) WHERE monitor_intake IS NULL;

-- Row-level security on the monitor's tables, as on every platform table: a user sees only their
-- own order intents; the worker connects as the tables' owner or a role that bypasses RLS
-- (Supabase's postgres / service_role), as the platform's own services do. On Supabase the user
-- is auth.uid(); elsewhere the JWT claim setting auth.uid() itself reads.
ALTER TABLE order_intents ENABLE ROW LEVEL SECURITY;
ALTER TABLE llm_call_pacing ENABLE ROW LEVEL SECURITY;  -- no user data: no policy, users see nothing
DO $$
DECLARE
    requester text := CASE WHEN EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                                        WHERE n.nspname = 'auth' AND p.proname = 'uid' AND p.pronargs = 0)
                           THEN 'auth.uid()'
                           ELSE 'nullif(current_setting(''request.jwt.claim.sub'', true), '''')::uuid' END;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_policies WHERE tablename = 'order_intents'
                   AND policyname = 'Users can view their own order intents') THEN
        EXECUTE format('CREATE POLICY "Users can view their own order intents" ON order_intents '
                       'FOR SELECT USING (%s = user_id)', requester);
    END IF;
END;
$$;
