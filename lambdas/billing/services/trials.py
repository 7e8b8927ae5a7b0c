"""Trials: one per tenant and product, limited in time and uses."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from lambdas.billing.models import StartTrialRequest, TrialList, TrialResponse
from lambdas.billing.ports import TrialsUowFactory
from lambdas.shared.constants import TRIAL_DURATION_DAYS, TRIAL_MAX_USAGE
from lambdas.shared.errors import Conflict, NotFound


class TrialTargetNotFound(NotFound):
    code = "trial_target_not_found"


class TrialAlreadyUsed(Conflict):
    code = "trial_already_used"
    constraints = ("trials_tenant_agent_key", "trials_tenant_subnucleo_key")
    constraint_message = "the tenant already had a trial of this product"


class TrialNotFound(NotFound):
    code = "trial_not_found"


class TrialUsedUp(Conflict):
    code = "trial_not_active"


def start_trial(
    uow_factory: TrialsUowFactory,
    request: StartTrialRequest,
    *,
    user_id: UUID,
    now: datetime,
) -> TrialResponse:
    """Start the tenant's one trial of an agent or a subnúcleo (a concurrent second start loses
    on the unique index with the same TrialAlreadyUsed)."""
    with uow_factory() as uow:
        if request.agent_id is not None and not uow.catalog.agent_exists(request.agent_id):
            raise TrialTargetNotFound("agent not found")
        if request.subnucleo_id is not None and not uow.catalog.subnucleo_exists(
            request.subnucleo_id
        ):
            raise TrialTargetNotFound("subnúcleo not found")
        if uow.trials.exists_for(agent_id=request.agent_id, subnucleo_id=request.subnucleo_id):
            raise TrialAlreadyUsed(TrialAlreadyUsed.constraint_message)
        trial = uow.trials.create(
            user_id=user_id,
            agent_id=request.agent_id,
            subnucleo_id=request.subnucleo_id,
            expires_at=now + timedelta(days=TRIAL_DURATION_DAYS),
            max_usage=TRIAL_MAX_USAGE,
        )
        uow.record(
            "trial.started",
            aggregate_type="trial",
            aggregate_id=str(trial.id),
            payload={
                "trial_id": trial.id,
                "agent_id": trial.agent_id,
                "subnucleo_id": trial.subnucleo_id,
                "expires_at": trial.expires_at,
                "max_usage": trial.max_usage,
            },
        )
        uow.commit()
        return trial


def list_trials(uow_factory: TrialsUowFactory) -> TrialList:
    with uow_factory() as uow:
        return TrialList(items=uow.trials.list_all())


def trial_usage(uow_factory: TrialsUowFactory, trial_id: UUID) -> TrialResponse:
    with uow_factory() as uow:
        trial = uow.trials.get(trial_id)
    if trial is None:
        raise TrialNotFound("trial not found")
    return trial


def record_trial_use(uow_factory: TrialsUowFactory, trial_id: UUID) -> TrialResponse:
    """Count one use of a usable trial; TrialUsedUp once it expired or ran out."""
    with uow_factory() as uow:
        used = uow.trials.record_use(trial_id)
        if used is None:
            if uow.trials.get(trial_id) is None:
                raise TrialNotFound("trial not found")
            raise TrialUsedUp("the trial has expired or has no uses left")
        uow.record(
            "trial.used",
            aggregate_type="trial",
            aggregate_id=str(used.id),
            payload={
                "trial_id": used.id,
                "usage_count": used.usage_count,
                "remaining_usage": used.remaining_usage,
            },
        )
        uow.commit()
        return used


def expire_trials(uow_factory: TrialsUowFactory) -> int:
    """Expire every active trial that is no longer usable, in every tenant; returns how many."""
    with uow_factory() as uow:
        expired = uow.trials.expire_all()
        uow.commit()
        return expired
