-- What the durable signal monitor adds beside the platform's tables.

-- Per-trader monitoring settings.
ALTER TABLE traders ADD COLUMN IF NOT EXISTS max_reanalyses integer NOT NULL DEFAULT 5;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS min_confidence_to_enter numeric(5, 2) NOT NULL DEFAULT 70;
ALTER TABLE traders ADD COLUMN IF NOT EXISTS max_monitoring_duration interval NOT NULL DEFAULT interval '24 hours';
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_max_reanalyses_check;
ALTER TABLE traders ADD CONSTRAINT traders_max_reanalyses_check CHECK (max_reanalyses >= 0);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_min_confidence_to_enter_check;
ALTER TABLE traders ADD CONSTRAINT traders_min_confidence_to_enter_check
    CHECK (min_confidence_to_enter >= 0 AND min_confidence_to_enter <= 100);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_max_monitoring_duration_check;
ALTER TABLE traders ADD CONSTRAINT traders_max_monitoring_duration_check
    CHECK (max_monitoring_duration > interval '0');

-- The monitor adds two statuses: `cancelled` (an operator cancelled the workflow) and `failed`
-- (the signal could not be analysed, e.g. 5 consecutive analyses failed after retries).
-- Every value an existing check constraint on signals.status allows is kept: the values are read
-- from each such constraint, merged with ours, and one constraint replaces them (added NOT VALID
-- when the old one was not validated either, so old rows are not re-judged).
DO $$
DECLARE
    allowed text[] := ARRAY['new', 'analysis_queued', 'analyzing', 'rejected', 'monitoring', 'ready',
                            'in_position', 'closed', 'expired', 'cancelled', 'failed'];
    validated boolean := true;
    con record;
    value text;
BEGIN
    FOR con IN
        SELECT c.conname, c.convalidated, pg_get_constraintdef(c.oid) AS def
        FROM pg_constraint c
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.conrelid = 'signals'::regclass AND c.contype = 'c' AND a.attname = 'status'
          AND array_length(c.conkey, 1) = 1 AND pg_get_constraintdef(c.oid) LIKE '%= ANY%'
    LOOP
        -- Quoted literals, one per value (`ARRAY['new'::text, ...]`) or one array literal ('{new,...}').
        FOR value IN SELECT btrim(v, '"')
                     FROM regexp_matches(con.def, '''((?:[^'']|'''')*)''', 'g') AS m,
                          LATERAL unnest(CASE WHEN m[1] LIKE '{%}' THEN string_to_array(btrim(m[1], '{}'), ',')
                                              ELSE ARRAY[replace(m[1], '''''', '''')] END) AS v
        LOOP
            IF NOT value = ANY (allowed) THEN
                allowed := allowed || value;
            END IF;
        END LOOP;
        validated := validated AND con.convalidated;
        EXECUTE format('ALTER TABLE signals DROP CONSTRAINT %I', con.conname);
    END LOOP;
    EXECUTE format('ALTER TABLE signals ADD CONSTRAINT signals_status_check CHECK (status IN (%s))%s',
                   (SELECT string_agg(quote_literal(v), ', ') FROM unnest(allowed) AS v),
                   CASE WHEN validated THEN '' ELSE ' NOT VALID' END);
END;
$$;
-- Why monitoring ended (abandoned by the model or an operator, limit, duration, failure...).
ALTER TABLE signals ADD COLUMN IF NOT EXISTS monitor_reason text;

-- Each analysis is tied to its candle and its number; the database itself refuses a second row
-- for the same (signal, candle) or the same (signal, analysis number). The first analysis, on the
-- signal's own price and time, has no candle. Rows written by the platform's app leave both NULL.
ALTER TABLE signal_analyses ADD COLUMN IF NOT EXISTS candle_open_time timestamptz;
ALTER TABLE signal_analyses ADD COLUMN IF NOT EXISTS analysis_number integer;
ALTER TABLE signal_analyses ADD COLUMN IF NOT EXISTS monitor_decision text;
ALTER TABLE signal_analyses DROP CONSTRAINT IF EXISTS signal_analyses_monitor_decision_check;
ALTER TABLE signal_analyses ADD CONSTRAINT signal_analyses_monitor_decision_check
    CHECK (monitor_decision IN ('enter', 'continue', 'abandon'));
CREATE UNIQUE INDEX IF NOT EXISTS signal_analyses_signal_candle_key
    ON signal_analyses (signal_id, candle_open_time);
CREATE UNIQUE INDEX IF NOT EXISTS signal_analyses_signal_number_key
    ON signal_analyses (signal_id, analysis_number);

-- What the trade executor picks up on `enter`: at most one intent per signal.
CREATE TABLE IF NOT EXISTS order_intents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    signal_id uuid NOT NULL UNIQUE,
    analysis_id uuid,
    trader_id uuid,
    user_id uuid,
    symbol text NOT NULL,
    side text NOT NULL CHECK (side IN ('buy', 'sell')),
    entry_price numeric,
    stop_loss numeric,
    take_profits jsonb NOT NULL DEFAULT '[]'::jsonb,
    confidence numeric(5, 2),
    status text NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'submitted', 'filled', 'cancelled', 'rejected')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
