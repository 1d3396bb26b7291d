-- The worker's own role. Row-level security on the monitor's tables (005, 006) lets a user see only
-- their rows; a worker that connects as neither the tables' owner nor a role that bypasses RLS
-- (Supabase's service_role) was refused its own writes ("new row violates row-level security").
-- `signal_monitor_worker` is a NOLOGIN group role: grant it to the login role the worker, intake
-- and bridge use (`GRANT signal_monitor_worker TO <login role>`); its policies let it read and write
-- every row of the monitor's tables, and nobody else gains anything.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signal_monitor_worker') THEN
        CREATE ROLE signal_monitor_worker NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- created meanwhile by a migration of another database of the same cluster
WHEN insufficient_privilege THEN
    -- A migrating role without CREATEROLE: the owner and service_role still work; say so.
    RAISE NOTICE 'signal_monitor_worker not created (no CREATEROLE): connect the worker as the owner or service_role';
END;
$$;

DO $$
DECLARE
    monitor_table text;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'signal_monitor_worker') THEN
        RETURN;
    END IF;
    -- What the processes read and write (the platform's tables too, where this migration may grant).
    FOREACH monitor_table IN ARRAY ARRAY['signals', 'traders', 'user_profiles', 'user_subscriptions',
                                         'signal_analyses', 'order_intents', 'llm_call_pacing', 'orders',
                                         'positions', 'position_management_decisions',
                                         'signal_monitor_migrations'] LOOP
        IF to_regclass(monitor_table) IS NULL THEN
            CONTINUE;
        END IF;
        BEGIN
            EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I TO signal_monitor_worker', monitor_table);
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'no grant on % to signal_monitor_worker (not its owner)', monitor_table;
        END;
    END LOOP;
    -- The monitor's own tables: every row, for the worker only.
    FOREACH monitor_table IN ARRAY ARRAY['order_intents', 'llm_call_pacing', 'orders', 'positions',
                                         'position_management_decisions'] LOOP
        IF to_regclass(monitor_table) IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM pg_policies WHERE tablename = monitor_table AND policyname = 'signal-monitor worker'
        ) THEN
            EXECUTE format('CREATE POLICY "signal-monitor worker" ON %I FOR ALL TO signal_monitor_worker '
                           'USING (true) WITH CHECK (true)', monitor_table);
        END IF;
    END LOOP;
    GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO signal_monitor_worker;
END;
$$;
