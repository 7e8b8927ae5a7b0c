"""The unit of work of the leads intake: the leads repositories plus outreach, forms and
imports."""

from __future__ import annotations

from lambdas.leads.outreach_repository import OutreachRepository
from lambdas.leads.uow import LeadsUnitOfWork


class LeadsIntakeUnitOfWork(LeadsUnitOfWork):
    outreach: OutreachRepository

    def _on_enter(self) -> None:
        super()._on_enter()
        if self.tenant_id is None:
            raise RuntimeError("the leads intake unit of work needs a tenant")
        self.outreach = OutreachRepository(self.conn, self.tenant_id)
