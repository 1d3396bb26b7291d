-- Queue-wide pacing of llm-proxy calls (SIGNAL_MONITOR_LLM_QUEUE_MAX_PER_SECOND).
-- Temporal's task-queue rate limit is a token bucket that lets a burst through after an idle
-- spell; each call also takes the next free slot here, so calls begin at least 1/rate apart
-- across every worker of the queue. One row per llm task queue; the row lock orders the slots.
CREATE TABLE IF NOT EXISTS llm_call_pacing (
    task_queue   text PRIMARY KEY,
    next_call_at timestamptz NOT NULL
);
