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
