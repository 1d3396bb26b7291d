-- Intake: `signal-monitor intake` hears about every new signal through LISTEN/NOTIFY, and sweeps
-- for the ones it missed (notifications are not durable: none are kept while nobody listens).

-- What the intake decided about a signal, once: `started` (a monitor runs or ran for it),
-- `already_ended` (its monitor had ended before) or `ineligible: <why>`. NULL = not decided yet,
-- which is what the sweep looks for; an operator may set it back to NULL to have it re-examined.
ALTER TABLE signals ADD COLUMN IF NOT EXISTS monitor_intake text;
ALTER TABLE signals ADD COLUMN IF NOT EXISTS monitor_intake_at timestamptz;

-- The sweep reads only undecided `new` signals, newest first: this partial index stays small
-- however long the table grows, because decided signals leave it.
CREATE INDEX IF NOT EXISTS signals_monitor_intake_pending_idx
    ON signals ("timestamp" DESC) WHERE monitor_intake IS NULL AND status = 'new';

CREATE OR REPLACE FUNCTION signal_monitor_notify_new_signal() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Only the id: the intake reads the row itself (and a payload has an 8000-byte limit).
    PERFORM pg_notify('signal_monitor_new_signal', NEW.id::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS signal_monitor_new_signal_notify ON signals;
CREATE TRIGGER signal_monitor_new_signal_notify
    AFTER INSERT ON signals
    FOR EACH ROW EXECUTE FUNCTION signal_monitor_notify_new_signal();
