"""Names operators, scripts, the bridge and the platform depend on. Keep them exactly."""

WORKFLOW_TYPE = "SignalMonitorWorkflow"
CANDLE_CLOSED_SIGNAL = "candle_closed"
STATE_QUERY = "state"
ABANDON_UPDATE = "abandon"
REANALYZE_UPDATE = "reanalyze"
SET_LIMIT_UPDATE = "set_limit"
DEFAULT_TASK_QUEUE = "signal-monitor"


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
OPEN_POSITION_ACTIVITY = "open_position"
MODIFY_POSITION_ACTIVITY = "modify_position"
REDUCE_POSITION_ACTIVITY = "reduce_position"
CLOSE_POSITION_ACTIVITY = "close_position"
START_POSITION_ACTIVITY = "start_position_manager"
