-- A model's full raw answer when it is longer than what workflow history keeps (16,000 characters;
-- activities/answer_hygiene.py). The llm-proxy activity parks it here under the call's correlation
-- id (`<signal>:<analysis number>`, `<signal>:position:<candle open time>`), already masked; the
-- write of the analysis or decision moves it into its row's `raw_ai_response` and deletes it here.
CREATE TABLE IF NOT EXISTS llm_raw_answers (
    correlation_id  text PRIMARY KEY,
    chars           integer NOT NULL,
    raw_ai_response text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signal_monitor_worker') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON llm_raw_answers TO signal_monitor_worker;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'no grant on llm_raw_answers to signal_monitor_worker (not its owner)';
END;
$$;
