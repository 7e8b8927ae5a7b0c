-- The leads list reads live rows newest first ((created_at, id) descending, the keyset of its
-- cursor). Each equality filter gets an index led by the tenant, holding the filter and then the
-- sort key, among live rows only, so a page is the first rows of one index range: no sort, no
-- rows read and thrown away. 006's status index lacked the id (an incremental sort) and counted
-- deleted rows; with campaigns independent of statuses, "campaign + status" walked the status
-- index and dropped 19 rows of 20 (the slowdown at 100,000 leads).
CREATE INDEX leads_tenant_live_status_idx
    ON nigredo_leads.leads (tenant_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX leads_tenant_live_campaign_idx
    ON nigredo_leads.leads (tenant_id, campanha_id, status, created_at DESC, id DESC)
    WHERE deleted_at IS NULL;
CREATE INDEX leads_tenant_live_owner_idx
    ON nigredo_leads.leads (tenant_id, assigned_to, created_at DESC, id DESC)
    WHERE deleted_at IS NULL AND assigned_to IS NOT NULL;
DROP INDEX nigredo_leads.leads_tenant_status_idx;
DROP INDEX nigredo_leads.leads_tenant_campanha_idx;
