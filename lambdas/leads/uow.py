"""The leads unit of work over PostgreSQL."""

from __future__ import annotations

from lambdas.leads.lgpd_repository import (
    ConsentRepository,
    DataSubjectRequestRepository,
    SuppressionRepository,
)
from lambdas.leads.reports_repository import ProcessingFacts
from lambdas.leads.repository import (
    CampaignRepository,
    InteractionRepository,
    LeadRepository,
    MeetingRepository,
)
from lambdas.leads.sync_pipeline_repository import PipelineBatchRepository
from lambdas.leads.sync_repository import (
    ChangesFeed,
    ConflictRepository,
    LeadBatchWriter,
    MutationLog,
    RetentionRepository,
    SyncSettingsRepository,
)
from lambdas.shared.db import UnitOfWork


class LeadsUnitOfWork(UnitOfWork):
    leads: LeadRepository
    lead_writes: LeadBatchWriter
    campaigns: CampaignRepository
    interactions: InteractionRepository
    meetings: MeetingRepository
    pipeline_writes: PipelineBatchRepository
    suppression: SuppressionRepository
    consents: ConsentRepository
    requests: DataSubjectRequestRepository
    feed: ChangesFeed
    sync_settings: SyncSettingsRepository
    mutations: MutationLog
    conflicts: ConflictRepository
    retention: RetentionRepository
    reports: ProcessingFacts

    def _on_enter(self) -> None:
        if self.tenant_id is None:
            raise RuntimeError("the leads unit of work needs a tenant")
        conn, tenant = self.conn, self.tenant_id
        self.leads = LeadRepository(conn, tenant)
        self.lead_writes = LeadBatchWriter(conn, tenant)
        self.campaigns = CampaignRepository(conn, tenant)
        self.interactions = InteractionRepository(conn, tenant)
        self.meetings = MeetingRepository(conn, tenant)
        self.pipeline_writes = PipelineBatchRepository(conn, tenant)
        self.suppression = SuppressionRepository(conn, tenant)
        self.consents = ConsentRepository(conn, tenant)
        self.requests = DataSubjectRequestRepository(conn, tenant)
        self.feed = ChangesFeed(conn, tenant)
        self.sync_settings = SyncSettingsRepository(conn, tenant)
        self.mutations = MutationLog(conn, tenant)
        self.conflicts = ConflictRepository(conn, tenant)
        self.retention = RetentionRepository(conn, tenant)
        self.reports = ProcessingFacts(conn, tenant)
