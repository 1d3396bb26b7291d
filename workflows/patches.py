"""Names of the monitor's `workflow.patched(...)` changes (see README "Changing the workflow");
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
# The position manager's: closes from the future refused by the monitor's candle gate (before it,
# a position took such a close, and every real close after it was stale).
POSITION_FUTURE_CANDLES_PATCH = "position-refuse-candles-from-the-future"
