"""Names of the monitor's `workflow.patched(...)` changes (see docs/testing.md, "Changing a workflow");
each has a history recorded before it and one after it in tests/histories/."""

# An operator's cancel that arrives while an activity runs reaches the workflow as that activity's
# cancellation (an ActivityError), not as asyncio.CancelledError: before this patch it was taken
# for a failed analysis and the monitor kept running.
CANCEL_DURING_ACTIVITY_PATCH = "cancel-during-activity"
# Before this patch a waiting candle was analysed before Temporal's continue-as-new suggestion was
# looked at, so a monitor that always had a close waiting (closes faster than analyses, or a
# backlog after an outage) never continued as new and grew toward the hard history limit.
CONTINUE_AS_NEW_FIRST_PATCH = "continue-as-new-before-waiting-candle"
# Before this patch a close opening later than now + one interval was analysed, and every real
# close after it was then stale. The marker is only written where a close from the future arrives.
FUTURE_CANDLES_PATCH = "refuse-candles-from-the-future"
# Beside the platform's trigger 028, its initial analysis is analysis #0 (no second paid call);
# the monitor runs #0 itself only when that analysis has not arrived by signal time + grace.
PLATFORM_INITIAL_ANALYSIS_PATCH = "platform-initial-analysis"
# An `enter` starts the signal's PositionManagerWorkflow (`position-<id>`); before this patch the
# monitor ended at the order intent and nothing managed the position.
START_POSITION_PATCH = "start-position-on-enter"
# Before this patch every loop turn waited with a max_monitoring_duration timeout: each candle
# cancelled that timer and started a new one (2 history events per candle). Now one durable timer
# per run is started at the first loop turn and the wait has no timeout.
ONE_DEADLINE_TIMER_PATCH = "one-deadline-timer"
# Before this patch record_analysis was a regular activity: 3 events of its own plus a workflow
# task (3 events) per candle. Now it is a local activity inside the workflow task that received the
# analysis (one marker event). The analysis is already in the history when the write starts, so a
# failed or retried write never calls llm-proxy again; the write is idempotent (a retry finds its
# own row), as it was for the regular activity's retries.
LOCAL_RECORD_PATCH = "record-analysis-local-activity"
# Before this patch an analysed candle was two activities: `analyze_signal` on the `-llm` queue,
# then `record_analysis` as a local activity in the workflow task that received the answer. Now
# `analyze_and_record_signal` asks and writes the row in one attempt (the same-work floor of issue
# 27: one activation, one local activity and one marker fewer per candle). A write that fails or
# is slow is not retried there: the answer comes back without its row and the workflow writes it
# with the local `record_analysis`, as before, so a failed write never asks llm-proxy again.
ANALYSIS_RECORDS_ITS_ROW_PATCH = "analysis-activity-records-its-row"
# The position manager's: closes from the future refused by the monitor's candle gate (before it,
# a position took such a close, and every real close after it was stale).
POSITION_FUTURE_CANDLES_PATCH = "position-refuse-candles-from-the-future"
# Before this patch the position's record_position_decision was a regular activity: 3 events of its
# own plus a workflow task (3 events) per managed candle. Now it is a local activity inside the
# workflow task that received the decision (one marker event): the model's answer is already in the
# history when the write starts, so a failed or retried write never asks llm-proxy again, and the
# write stays idempotent (keyed on the position and the candle: a retry finds its own row).
POSITION_LOCAL_RECORD_PATCH = "position-record-decision-local-activity"
# Before this patch every managed candle was `manage_position` on the `-llm` queue, then the local
# `record_position_decision`. Now `manage_and_record_position` writes the row itself when the
# validated answer is a `hold` (no order, no new level: the row is all that candle changes); any
# other action, and a write that fails or is slow there, is recorded by the workflow as before,
# after its orders, the answer already in its history.
POSITION_HOLD_RECORDED_BY_CALL_PATCH = "position-manage-activity-records-a-hold"
# The price-move gates (trader settings min_price_move_pct, management_min_move_pct): a close that
# moved less than the setting since the last close the model was asked about is counted `gated`
# and not sent to the model (the position's stop and target checks still run). The marker is only
# written where a close is gated.
PRICE_MOVE_GATE_PATCH = "price-move-gate"
POSITION_PRICE_MOVE_GATE_PATCH = "position-price-move-gate"
# Before this patch a model's reduce that left less than the symbol's minimum order value (e.g.
# `reduceAmount 0.99999999999`: 1e-8 contracts) kept that dust open and managed, one paid
# manage-position call per candle. Now such a reduce closes the whole position. The marker is only
# written where such a reduce arrives.
POSITION_DUST_REMAINDER_PATCH = "position-reduce-dust-closes-the-rest"
# Both workflows: before this patch a start whose signal id was another spelling of a UUID
# (upper case, braces, no dashes, `urn:uuid:`) under the matching id (`signal-<UPPER>`) ran beside
# the canonical `signal-<lowercase>`: a second paid analysis, two workflows writing one row. Now it
# fails at once (WrongWorkflowId) and writes nothing. The marker is only written for such a start.
CANONICAL_SIGNAL_ID_PATCH = "canonical-signal-id"
# Before this patch a position workflow started for a signal whose position row already existed
# (a run terminated or failed, then a start by hand) opened again: over a closed row it re-opened a
# ghost and paid a manage call. Now the start reads the row first: an open position is taken over
# as it is, a closed one closes the signal with no order and no call. The marker is only written
# where a row exists at the start.
POSITION_REAL_STATE_PATCH = "position-start-reads-the-real-state"
# A live position (id `live-...`) reconciles with its exchange at every managed close: an
# exchange-side fill of its resting stop closes it from the real fills, a cancelled stop is put back,
# a balance lower than the position ends it; the candle's stop rule is then the exchange's, not the
# paper one. Paper positions never reach the check, so their histories carry no marker.
LIVE_RECONCILE_PATCH = "live-position-reconcile"
