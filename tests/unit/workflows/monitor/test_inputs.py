import pytest
from temporalio.exceptions import ApplicationError

from workflows.common import names
from workflows.common.parsing import parse
from workflows.monitor.inputs import AbandonRequest, ReanalyzeRequest, SetLimitRequest, parse_start
from workflows.monitor.models import MonitorState, SignalMonitorInput

UUID = "6f1c2c3e-8a8b-4c1d-9e2f-0a1b2c3d4e5f"


@pytest.mark.parametrize("raw", ["exchange halted", {"reason": "exchange halted"}, "  exchange halted  "])
def test_abandon_accepts_what_operators_type(raw):
    assert parse(AbandonRequest, raw).reason == "exchange halted"


@pytest.mark.parametrize("raw", ["", "   ", 42, {"why": "x"}, "x" * 501, None, [1], {"reason": 5}])
def test_abandon_refuses_the_rest(raw):
    with pytest.raises(ApplicationError) as info:
        parse(AbandonRequest, raw)
    assert info.value.type == "InvalidRequest" and "reason" in info.value.message


@pytest.mark.parametrize("raw", [7, {"limit": 7}, SetLimitRequest(limit=7)])
def test_set_limit_accepts_a_number_or_an_object(raw):
    assert parse(SetLimitRequest, raw).limit == 7


@pytest.mark.parametrize("raw", [-1, "3", 3.5, True, 10_001, None, {"limit": "7"}, [7]])
def test_set_limit_refuses_the_rest(raw):
    with pytest.raises(ApplicationError) as info:
        parse(SetLimitRequest, raw)
    assert "set_limit needs a whole number" in info.value.message or "between 0 and 1000" in info.value.message


def test_reanalyze_takes_nothing():
    assert parse(ReanalyzeRequest, None) == ReanalyzeRequest()
    assert parse(ReanalyzeRequest, {}) == ReanalyzeRequest()
    with pytest.raises(ApplicationError, match="takes no input"):
        parse(ReanalyzeRequest, 5)


def test_a_good_start_and_a_carried_one():
    assert parse_start(({"signal_id": UUID},), f"signal-{UUID}").signal_id == UUID
    carried = SignalMonitorInput(signal_id=UUID, carried=MonitorState(runs=3)).model_dump(mode="json")
    started = parse_start((carried,), f"signal-{UUID}")
    assert started.carried is not None and started.carried.runs == 3


@pytest.mark.parametrize(
    "args",
    [
        (),
        ({},),
        ({"signal_id": 123},),
        ([1, 2],),
        (None,),
        ({"signal_id": UUID, "carried": 5},),
        ({"signal_id": UUID}, 1),
    ],
)
def test_bad_starts_fail_with_a_clear_non_retryable_error(args):
    with pytest.raises(ApplicationError) as info:
        parse_start(args, f"signal-{UUID}")
    assert info.value.non_retryable and info.value.type == "InvalidStart"
    assert "signal_id" in info.value.message


def test_a_workflow_id_not_matching_its_signal_is_refused():
    with pytest.raises(ApplicationError) as info:
        parse_start(({"signal_id": UUID},), "signal-someone-else")
    assert info.value.type == names.WRONG_WORKFLOW_ID and info.value.non_retryable


def test_update_rules_over_the_state():
    from datetime import UTC, datetime

    from workflows.monitor.inputs import check_abandon, check_reanalyze, check_set_limit
    from workflows.monitor.models import MonitorResult, SignalContext

    s = MonitorState()
    with pytest.raises(ApplicationError) as info:
        check_abandon(s, "x")
    assert info.value.type == "MonitorNotReady"
    s.context = SignalContext(
        signal_id="s", status="new", symbol="BTCUSDT", interval="1m", signal_time=datetime.now(UTC), trader_found=True
    )
    s.max_reanalyses = 5
    assert check_abandon(s, "halted").reason == "halted"
    assert check_set_limit(s, {"limit": 3}).limit == 3
    with pytest.raises(ApplicationError, match="nothing to reanalyse"):
        check_reanalyze(s, None)
    s.abandon_reason = "halted"
    with pytest.raises(ApplicationError, match="already in progress"):
        check_abandon(s, "again")
    s.result = MonitorResult(signal_id="s", status="expired", reason="r", analyses=1, reanalyses=0, counts=s.counts)
    with pytest.raises(ApplicationError) as info:
        check_set_limit(s, 7)
    assert info.value.type == "MonitorEnded" and "expired" in info.value.message
