"""The unit of work of the leads intake: the leads repositories plus outreach, forms and
imports."""

from __future__ import annotations

from lambdas.leads.forms_repository import (
    FormRepository,
    SubmissionRepository,
    TenantRateLimitRepository,
    WebhookLogRepository,
)
from lambdas.leads.imports_repository import ImportRepository
from lambdas.leads.outreach_repository import OutreachRepository
from lambdas.leads.uow import LeadsUnitOfWork


class LeadsIntakeUnitOfWork(LeadsUnitOfWork):
    outreach: OutreachRepository
    forms: FormRepository
    submissions: SubmissionRepository
    rate_limits: TenantRateLimitRepository
    webhook_logs: WebhookLogRepository
    imports: ImportRepository

    def _on_enter(self) -> None:
        super()._on_enter()
        if self.tenant_id is None:
            raise RuntimeError("the leads intake unit of work needs a tenant")
        conn, tenant = self.conn, self.tenant_id
        self.outreach = OutreachRepository(conn, tenant)
        self.forms = FormRepository(conn, tenant)
        self.submissions = SubmissionRepository(conn, tenant)
        self.rate_limits = TenantRateLimitRepository(conn, tenant)
        self.webhook_logs = WebhookLogRepository(conn, tenant)
        self.imports = ImportRepository(conn, tenant)
