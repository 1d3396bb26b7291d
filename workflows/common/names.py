"""Names operators, scripts, the bridge and the platform depend on. Keep them exactly.

Activity names and error types live here so the workflow can call activities by name without
importing their I/O modules (httpx, asyncpg): `activities/` imports these, never the reverse."""

WORKFLOW_TYPE = "SignalMonitorWorkflow"
CANDLE_CLOSED_SIGNAL = "candle_closed"
STATE_QUERY = "state"
ABANDON_UPDATE = "abandon"
REANALYZE_UPDATE = "reanalyze"
SET_LIMIT_UPDATE = "set_limit"
DEFAULT_TASK_QUEUE = "signal-monitor"

# Activities (registered under these names by `activities/`).
LOAD_SIGNAL = "load_signal"
RECORD_ANALYSIS = "record_analysis"
FINISH_SIGNAL = "finish_signal"
ANALYZE_SIGNAL = "analyze_signal"
# The analysis and its row in one activity (patch `analysis-activity-records-its-row`).
ANALYZE_AND_RECORD_SIGNAL = "analyze_and_record_signal"
FIND_PLATFORM_ANALYSIS = "find_platform_analysis"

# Error types of the database activities (ApplicationError.type).
SIGNAL_NOT_FOUND = "SignalNotFound"
INVALID_SIGNAL_ID = "InvalidSignalId"
# The signal/trader row holds data the monitor cannot use: the signal ends `failed` at once.
INVALID_SIGNAL_DATA = "InvalidSignalData"
# Constraint violations, data errors, undefined table/column, permissions: no retry can fix them.
PERMANENT_DATABASE_ERROR = "PermanentDatabaseError"
DB_NON_RETRYABLE = [SIGNAL_NOT_FOUND, INVALID_SIGNAL_ID, INVALID_SIGNAL_DATA, PERMANENT_DATABASE_ERROR]

# Error types of the llm-proxy activity.
LLM_AUTH_ERROR = "LlmProxyAuthError"
LLM_REQUEST_REJECTED = "LlmProxyRequestRejected"
LLM_RATE_LIMITED = "LlmProxyRateLimited"
LLM_SERVER_ERROR = "LlmProxyServerError"
LLM_UNAVAILABLE = "LlmProxyUnavailable"
LLM_TIMEOUT = "LlmProxyTimeout"
LLM_BAD_ANSWER = "LlmProxyBadAnswer"
LLM_NON_RETRYABLE = [LLM_AUTH_ERROR, LLM_REQUEST_REJECTED]

# Errors the workflow itself fails with.
INVALID_START = "InvalidStart"
WRONG_WORKFLOW_ID = "WrongWorkflowId"
# Update rejections.
INVALID_REQUEST = "InvalidRequest"
MONITOR_ENDED = "MonitorEnded"
MONITOR_NOT_READY = "MonitorNotReady"


def workflow_id_for(signal_id: str) -> str:
    return f"signal-{signal_id}"


def llm_task_queue_for(task_queue: str) -> str:
    """The llm-proxy activity runs on its own queue so its concurrency and rate caps bind only
    llm-proxy calls (and eager execution cannot bypass the queue-wide rate limit)."""
    return f"{task_queue}-llm"


POSITION_WORKFLOW_TYPE = "PositionManagerWorkflow"
CLOSE_UPDATE = "close"
SET_STOP_LOSS_UPDATE = "set_stop_loss"
SET_TAKE_PROFIT_UPDATE = "set_take_profit"


def position_workflow_id_for(signal_id: str) -> str:
    return f"position-{signal_id}"


# Activities of the position manager, called by name (the workflow imports no activity module).
LOAD_POSITION_ACTIVITY = "load_position"
RECORD_POSITION_DECISION_ACTIVITY = "record_position_decision"
CLOSE_SIGNAL_ACTIVITY = "close_signal"
MANAGE_POSITION_ACTIVITY = "manage_position"
# A `hold` and its row in one activity (patch `position-manage-activity-records-a-hold`).
MANAGE_AND_RECORD_POSITION_ACTIVITY = "manage_and_record_position"
OPEN_POSITION_ACTIVITY = "open_position"
MODIFY_POSITION_ACTIVITY = "modify_position"
REDUCE_POSITION_ACTIVITY = "reduce_position"
CLOSE_POSITION_ACTIVITY = "close_position"
# A live position against its exchange (only live positions call it; see docs/live-orders.md).
RECONCILE_POSITION_ACTIVITY = "reconcile_position"
START_POSITION_ACTIVITY = "start_position_manager"

# Error types of the execution backend, and the position's own refusals.
POSITION_NOT_FOUND = "PositionNotFound"
POSITION_CLOSED = "PositionClosed"
POSITION_DB_NON_RETRYABLE = [*DB_NON_RETRYABLE, POSITION_NOT_FOUND, POSITION_CLOSED]
POSITION_NOT_OPEN = "PositionNotOpen"
POSITION_BUSY = "PositionBusy"
POSITION_STATE_INVALID = "PositionStateInvalid"
# The live backend's (activities/live/backend.py): the exchange refused the order or the account
# cannot trade (both non-retryable), or it could not be reached or rate limited the request.
EXCHANGE_REFUSED = "ExchangeRefused"
EXCHANGE_RATE_LIMITED = "ExchangeRateLimited"
EXCHANGE_UNAVAILABLE = "ExchangeUnavailable"
EXCHANGE_ACCOUNT_UNUSABLE = "ExchangeAccountUnusable"
