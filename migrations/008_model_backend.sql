-- The `model` decision backend (issue 21): what each decision cost and came from, beside the
-- platform's own columns of `signal_analyses` and `position_management_decisions` (NULL on rows
-- written by llm-proxy or the platform), and the trader's cost controls.
--   model_requested / model_served   the model id asked for, and the one the provider says answered
--   prompt_version / prompt_sha256   the versioned prompt and the sha256 of the rendered messages
--   tokens_in / tokens_out / tokens_cached
--   cost_usd / cost_source           USD; `provider` (its own figure), `price_table` (the documented
--                                    table), `cache` (the backtest's answer cache: no call); NULL unknown
--   model_latency_ms / model_attempts  the calls of the decision (2 after the one re-ask)
--   abstained / abstain_reason       the answer was unusable twice: recorded as wait / hold
-- The same columns on both decision tables, from one list.
DO $$
DECLARE
    decision_table text;
BEGIN
    FOREACH decision_table IN ARRAY ARRAY['signal_analyses', 'position_management_decisions'] LOOP
        EXECUTE format('ALTER TABLE %I ', decision_table) || array_to_string(ARRAY[
            'ADD COLUMN IF NOT EXISTS model_requested text',
            'ADD COLUMN IF NOT EXISTS model_served text',
            'ADD COLUMN IF NOT EXISTS prompt_version text',
            'ADD COLUMN IF NOT EXISTS prompt_sha256 text',
            'ADD COLUMN IF NOT EXISTS tokens_in integer',
            'ADD COLUMN IF NOT EXISTS tokens_out integer',
            'ADD COLUMN IF NOT EXISTS tokens_cached integer',
            'ADD COLUMN IF NOT EXISTS cost_usd numeric(14, 8)',
            'ADD COLUMN IF NOT EXISTS cost_source text',
            'ADD COLUMN IF NOT EXISTS model_latency_ms integer',
            'ADD COLUMN IF NOT EXISTS model_attempts integer',
            'ADD COLUMN IF NOT EXISTS abstained boolean',
            'ADD COLUMN IF NOT EXISTS abstain_reason text'
        ], ', ');
    END LOOP;
END $$;

-- Cost controls (NULL = off): a close whose price moved less than this percent since the last
-- analysed close (the last managed close, for positions) is not sent to the model.
ALTER TABLE traders ADD COLUMN IF NOT EXISTS min_price_move_pct numeric(6, 3);
ALTER TABLE traders ADD COLUMN IF NOT EXISTS management_min_move_pct numeric(6, 3);
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_min_price_move_pct_check;
ALTER TABLE traders ADD CONSTRAINT traders_min_price_move_pct_check
    CHECK (min_price_move_pct IS NULL OR (min_price_move_pct > 0 AND min_price_move_pct < 100));
ALTER TABLE traders DROP CONSTRAINT IF EXISTS traders_management_min_move_pct_check;
ALTER TABLE traders ADD CONSTRAINT traders_management_min_move_pct_check
    CHECK (management_min_move_pct IS NULL OR (management_min_move_pct > 0 AND management_min_move_pct < 100));
