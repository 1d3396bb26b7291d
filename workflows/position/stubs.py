"""The position manager's activities as typed calls by name (like the monitor's `stubs`): one place with their timeouts and retry policies. A permanent refusal of a database or
backend activity is raised as the workflow's own ApplicationError, in the activity's words (not
"Activity task failed"). Only callable from workflow code."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import names, policies
from workflows.common.activity_calls import db_call, llm_call, refusal
from workflows.position.models import (
    ClosedSignal,
    CloseSignalInput,
    Fill,
    LoadPositionInput,
    ManageAndRecordInput,
    ManagedPosition,
    ManagementAnswer,
    ManagePositionInput,
    ModifyInput,
    OpenedPosition,
    OpenPositionInput,
    OrderInput,
    PositionContext,
    Reconciled,
    ReconcileInput,
    RecordDecisionInput,
    RecordedDecision,
)

Result = TypeVar("Result")


async def _db(activity: str, arg: BaseModel, result_type: type[Result], summary: str, local: bool = False) -> Result:
    # A local activity's failure reaches the workflow as the ApplicationError itself.
    try:
        return await db_call(activity, arg, result_type, summary, policies.POSITION_DB_RETRY, local=local)
    except (ActivityError, ApplicationError) as err:
        if failure := refusal(err, *names.POSITION_DB_NON_RETRYABLE, wording=f"{activity}: {{}}"):
            raise failure from None
        raise


async def load_position(arg: LoadPositionInput) -> PositionContext:
    return await _db(names.LOAD_POSITION_ACTIVITY, arg, PositionContext, "load signal")


async def open_position(arg: OpenPositionInput, summary: str) -> OpenedPosition:
    return await _db(names.OPEN_POSITION_ACTIVITY, arg, OpenedPosition, summary)


async def fill_order(arg: OrderInput, summary: str) -> Fill:
    """A close (everything left) or a reduce, by the order's `close` flag."""
    activity = names.CLOSE_POSITION_ACTIVITY if arg.close else names.REDUCE_POSITION_ACTIVITY
    return await _db(activity, arg, Fill, summary)


async def reconcile_position(arg: ReconcileInput, summary: str) -> Reconciled:
    return await _db(names.RECONCILE_POSITION_ACTIVITY, arg, Reconciled, summary)


async def modify_position(arg: ModifyInput, summary: str) -> bool:
    return await _db(names.MODIFY_POSITION_ACTIVITY, arg, bool, summary)


async def record_decision(arg: RecordDecisionInput, summary: str, local: bool) -> RecordedDecision:
    return await _db(names.RECORD_POSITION_DECISION_ACTIVITY, arg, RecordedDecision, summary, local)


async def close_signal(arg: CloseSignalInput, summary: str) -> ClosedSignal:
    return await _db(names.CLOSE_SIGNAL_ACTIVITY, arg, ClosedSignal, summary)


async def manage_position(arg: ManagePositionInput, summary: str) -> ManagementAnswer:
    return await llm_call(names.MANAGE_POSITION_ACTIVITY, arg, ManagementAnswer, summary)


async def manage_and_record_position(arg: ManageAndRecordInput, summary: str) -> ManagedPosition:
    return await llm_call(names.MANAGE_AND_RECORD_POSITION_ACTIVITY, arg, ManagedPosition, summary)
