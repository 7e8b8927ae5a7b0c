-- Leads (Nigredo) for the routes: versions and soft delete for offline clients, normalised
-- identifiers for duplicate detection, the LGPD records (consent history, an HMAC-only
-- suppression list, data subject requests), a changes feed that never skips a row committed
-- late, idempotent batched sync with stored conflicts, and no overlapping meetings per owner.
-- docs/leads.md explains the choices.
CREATE EXTENSION IF NOT EXISTS btree_gist;

INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('leads:read', 'See the tenant''s leads, campaigns, interactions, meetings and metrics'),
    ('leads:write', 'Create and change leads, campaigns, interactions and meetings; sync'),
    ('leads:dsr', 'Handle data subject requests (access, correction, erasure)')
ON CONFLICT (code) DO NOTHING;

INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
JOIN alquimista_platform.permissions AS p ON
    CASE r.name
        WHEN 'admin' THEN p.code IN ('leads:read', 'leads:write', 'leads:dsr')
        WHEN 'member' THEN p.code IN ('leads:read', 'leads:write')
        WHEN 'viewer' THEN p.code = 'leads:read'
        ELSE false
    END
ON CONFLICT (role_id, permission_id) DO NOTHING;

-- Versions and soft delete on the four synced entities. The version is bumped by a trigger, so
-- every writer (routes, sync, erasure, jobs) advances it and a stale If-Match always loses.
ALTER TABLE nigredo_leads.leads
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN email_normalized text
        CHECK (email_normalized = lower(email_normalized) AND email_normalized LIKE '%_@_%'),
    ADD COLUMN phone_e164 text CHECK (phone_e164 ~ '^\+[1-9][0-9]{7,14}$'),
    ADD COLUMN converted_at timestamptz;
ALTER TABLE nigredo_leads.campanhas
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN deleted_at timestamptz;
ALTER TABLE nigredo_leads.interacoes
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN deleted_at timestamptz;
ALTER TABLE nigredo_leads.agendamentos
    ADD COLUMN version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    ADD COLUMN deleted_at timestamptz,
    ADD COLUMN ends_at timestamptz;

-- Duplicates are decided by these indexes (not by a pre-check), among live rows only, so a
-- soft-deleted lead does not block re-creating the person.
DROP INDEX nigredo_leads.leads_tenant_email_key;
CREATE UNIQUE INDEX leads_tenant_email_normalized_key
    ON nigredo_leads.leads (tenant_id, email_normalized)
    WHERE deleted_at IS NULL AND email_normalized IS NOT NULL;
CREATE UNIQUE INDEX leads_tenant_phone_e164_key
    ON nigredo_leads.leads (tenant_id, phone_e164)
    WHERE deleted_at IS NULL AND phone_e164 IS NOT NULL;
CREATE INDEX leads_tenant_live_created_idx
    ON nigredo_leads.leads (tenant_id, created_at DESC, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX leads_tenant_deleted_idx
    ON nigredo_leads.leads (tenant_id, deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX leads_tags_idx ON nigredo_leads.leads USING gin (tags);
-- Text search over name, company and e-mail: one trigram index on the expression the list
-- query filters with (ILIKE '%term%').
CREATE INDEX leads_search_trgm_idx ON nigredo_leads.leads USING gin (
    (coalesce(full_name, '') || ' ' || coalesce(company, '') || ' ' || coalesce(email_normalized, ''))
    gin_trgm_ops
);

ALTER TABLE nigredo_leads.campanhas DROP CONSTRAINT campanhas_tenant_id_name_key;
CREATE UNIQUE INDEX campanhas_tenant_name_key
    ON nigredo_leads.campanhas (tenant_id, name) WHERE deleted_at IS NULL;

CREATE FUNCTION nigredo_leads.bump_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    RETURN NEW;
END
$$;

CREATE FUNCTION nigredo_leads.lead_converted_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status = 'won' AND (TG_OP = 'INSERT' OR OLD.status <> 'won') THEN
        NEW.converted_at := now();
    ELSIF NEW.status <> 'won' THEN
        NEW.converted_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER lead_converted_at BEFORE INSERT OR UPDATE OF status ON nigredo_leads.leads
    FOR EACH ROW EXECUTE FUNCTION nigredo_leads.lead_converted_at();

-- Meetings: the end is derived (minutes have no DST ambiguity), so the exclusion constraint
-- can use an immutable tstzrange over two columns.
CREATE FUNCTION nigredo_leads.meeting_ends_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.ends_at := NEW.scheduled_for + make_interval(mins => NEW.duration_minutes);
    RETURN NEW;
END
$$;
CREATE TRIGGER meeting_ends_at BEFORE INSERT OR UPDATE ON nigredo_leads.agendamentos
    FOR EACH ROW EXECUTE FUNCTION nigredo_leads.meeting_ends_at();
UPDATE nigredo_leads.agendamentos SET duration_minutes = duration_minutes;
ALTER TABLE nigredo_leads.agendamentos ALTER COLUMN ends_at SET NOT NULL;
ALTER TABLE nigredo_leads.agendamentos ADD CONSTRAINT agendamentos_owner_no_overlap
    EXCLUDE USING gist (
        tenant_id WITH =, owner_user_id WITH =, tstzrange(scheduled_for, ends_at) WITH &&
    ) WHERE (deleted_at IS NULL AND owner_user_id IS NOT NULL
             AND status IN ('scheduled', 'confirmed', 'completed'));
CREATE INDEX agendamentos_tenant_owner_idx
    ON nigredo_leads.agendamentos (tenant_id, owner_user_id, scheduled_for);

-- The changes feed: one row per entity, moved to the end of the feed on every change.
-- ``txid`` is the writing transaction's id and ``seq`` orders the rows inside it. A reader
-- serves only rows whose txid is below the oldest transaction still in flight
-- (pg_snapshot_xmin(pg_current_snapshot())): every such transaction has ended, and any later
-- commit has a txid at or above that horizon, so a cursor (txid, seq) never passes a row that
-- has yet to commit, whatever the commit order.
CREATE SEQUENCE nigredo_leads.changes_seq;
CREATE TABLE nigredo_leads.changes (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    entity      text NOT NULL CHECK (entity IN ('lead', 'campaign', 'interaction', 'meeting')),
    entity_id   uuid NOT NULL,
    op          text NOT NULL CHECK (op IN ('upsert', 'delete')),
    version     bigint NOT NULL,
    txid        xid8 NOT NULL DEFAULT pg_current_xact_id(),
    seq         bigint NOT NULL DEFAULT nextval('nigredo_leads.changes_seq'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT changes_entity_key UNIQUE (tenant_id, entity, entity_id)
);
ALTER SEQUENCE nigredo_leads.changes_seq OWNED BY nigredo_leads.changes.seq;
CREATE INDEX changes_tenant_position_idx ON nigredo_leads.changes (tenant_id, txid, seq);
SELECT public.attach_updated_at('nigredo_leads.changes');
SELECT public.enable_tenant_rls('nigredo_leads.changes');

CREATE FUNCTION nigredo_leads.record_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM nigredo_leads.changes
        WHERE tenant_id = OLD.tenant_id AND entity = TG_ARGV[0] AND entity_id = OLD.id;
        RETURN OLD;
    END IF;
    INSERT INTO nigredo_leads.changes AS c (tenant_id, entity, entity_id, op, version)
    VALUES (NEW.tenant_id, TG_ARGV[0], NEW.id,
            CASE WHEN NEW.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END, NEW.version)
    ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE
        SET op = EXCLUDED.op, version = EXCLUDED.version,
            txid = pg_current_xact_id(), seq = nextval('nigredo_leads.changes_seq');
    RETURN NEW;
END
$$;

DO $$
DECLARE
    target record;
BEGIN
    FOR target IN SELECT * FROM (VALUES ('leads', 'lead'), ('campanhas', 'campaign'),
                                        ('interacoes', 'interaction'), ('agendamentos', 'meeting'))
                  AS t (tbl, entity)
    LOOP
        EXECUTE format(
            'CREATE TRIGGER bump_version BEFORE UPDATE ON nigredo_leads.%I '
            'FOR EACH ROW EXECUTE FUNCTION nigredo_leads.bump_version()', target.tbl);
        EXECUTE format(
            'CREATE TRIGGER record_change AFTER INSERT OR UPDATE OR DELETE ON nigredo_leads.%I '
            'FOR EACH ROW EXECUTE FUNCTION nigredo_leads.record_change(%L)',
            target.tbl, target.entity);
    END LOOP;
END
$$;

-- Per tenant: the conflict policy of sync, and the feed position up to which deleted rows
-- were purged (a client whose cursor is older must download everything again).
CREATE TABLE nigredo_leads.sync_settings (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL
                         REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    last_writer_wins     boolean NOT NULL DEFAULT false,
    purged_through_txid  xid8,
    purged_through_seq   bigint,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_settings_tenant_key UNIQUE (tenant_id),
    CHECK ((purged_through_txid IS NULL) = (purged_through_seq IS NULL))
);
SELECT public.attach_updated_at('nigredo_leads.sync_settings');
SELECT public.enable_tenant_rls('nigredo_leads.sync_settings');

-- Idempotent push: a client mutation id is applied once per tenant and device; a replay returns
-- the stored result. The result holds ids, versions and outcomes, never the lead's data.
CREATE TABLE nigredo_leads.sync_mutations (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL
                        REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    device_id           text NOT NULL CHECK (length(device_id) BETWEEN 1 AND 200),
    client_mutation_id  text NOT NULL CHECK (length(client_mutation_id) BETWEEN 1 AND 200),
    batch_id            uuid NOT NULL,
    entity              text NOT NULL CHECK (entity IN ('lead', 'campaign', 'interaction', 'meeting')),
    entity_id           uuid,
    op                  text NOT NULL CHECK (op IN ('create', 'update', 'delete')),
    outcome             text NOT NULL CHECK (outcome IN ('applied', 'conflict', 'rejected')),
    result              jsonb NOT NULL DEFAULT '{}'::jsonb,
    user_id             uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT sync_mutations_client_key UNIQUE (tenant_id, device_id, client_mutation_id)
);
CREATE INDEX sync_mutations_tenant_entity_idx
    ON nigredo_leads.sync_mutations (tenant_id, entity, entity_id);
SELECT public.attach_updated_at('nigredo_leads.sync_mutations');
SELECT public.enable_tenant_rls('nigredo_leads.sync_mutations');

-- Conflicts kept for the user: both versions as they were (erasure deletes a person's).
CREATE TABLE nigredo_leads.sync_conflicts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    mutation_id     uuid REFERENCES nigredo_leads.sync_mutations (id) ON DELETE SET NULL,
    entity          text NOT NULL CHECK (entity IN ('lead', 'campaign', 'interaction', 'meeting')),
    entity_id       uuid NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('update_update', 'update_delete', 'create_create')),
    mine            jsonb NOT NULL,
    theirs          jsonb NOT NULL,
    base_version    bigint,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    resolution      text CHECK (resolution IN ('keep_mine', 'keep_theirs', 'merged')),
    resolved_by     uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    resolved_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((status = 'resolved') = (resolution IS NOT NULL AND resolved_at IS NOT NULL))
);
CREATE INDEX sync_conflicts_tenant_open_idx
    ON nigredo_leads.sync_conflicts (tenant_id, status, created_at);
CREATE INDEX sync_conflicts_tenant_entity_idx
    ON nigredo_leads.sync_conflicts (tenant_id, entity, entity_id);
SELECT public.attach_updated_at('nigredo_leads.sync_conflicts');
SELECT public.enable_tenant_rls('nigredo_leads.sync_conflicts');

-- Consent proof (LGPD Art. 8): who recorded it, when, through which channel, for which
-- purposes, under which exact text version, and an HMAC of the IP (verifiable against an IP
-- the person or an auditor presents, never readable). Append-only: the one change allowed is
-- erasure clearing the IP's HMAC; rows go only with their lead (its purge).
CREATE TABLE nigredo_leads.consent_events (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id       uuid NOT NULL REFERENCES nigredo_leads.leads (id) ON DELETE CASCADE,
    action        text NOT NULL CHECK (action IN ('granted', 'withdrawn', 'denied')),
    channel       text NOT NULL CHECK (channel IN ('form', 'email', 'phone', 'whatsapp',
                                                   'in_person', 'import', 'api')),
    purposes      text[] NOT NULL DEFAULT '{}',
    text_version  text CHECK (length(text_version) BETWEEN 1 AND 100),
    ip_hmac       text CHECK (ip_hmac ~ '^[0-9a-f]{64}$'),
    recorded_by   uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    occurred_at   timestamptz NOT NULL DEFAULT now(),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (action <> 'granted' OR (text_version IS NOT NULL AND cardinality(purposes) > 0))
);
CREATE INDEX consent_events_tenant_lead_idx
    ON nigredo_leads.consent_events (tenant_id, lead_id, occurred_at);
SELECT public.attach_updated_at('nigredo_leads.consent_events');
SELECT public.enable_tenant_rls('nigredo_leads.consent_events');

CREATE FUNCTION nigredo_leads.consent_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF EXISTS (SELECT 1 FROM nigredo_leads.leads WHERE id = OLD.lead_id) THEN
            RAISE EXCEPTION 'consent history is append-only'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'consent_events_append_only';
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.ip_hmac IS NOT NULL
       OR (to_jsonb(NEW) - 'ip_hmac' - 'updated_at') <> (to_jsonb(OLD) - 'ip_hmac' - 'updated_at')
    THEN
        RAISE EXCEPTION 'consent history is append-only'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'consent_events_append_only';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER consent_events_append_only BEFORE UPDATE OR DELETE ON nigredo_leads.consent_events
    FOR EACH ROW EXECUTE FUNCTION nigredo_leads.consent_events_append_only();

-- The suppression list holds HMAC-SHA256 digests of normalised identifiers only, so it can
-- outlive an erasure without keeping the person's data in clear.
ALTER TABLE nigredo_leads.blocklist RENAME COLUMN value TO value_hmac;
ALTER TABLE nigredo_leads.blocklist
    ADD CONSTRAINT blocklist_value_is_hmac CHECK (value_hmac ~ '^[0-9a-f]{64}$');

-- Data subject requests (LGPD Art. 18), answered within 15 days (Art. 19, II).
CREATE TABLE nigredo_leads.data_subject_requests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id       uuid REFERENCES nigredo_leads.leads (id) ON DELETE SET NULL,
    kind          text NOT NULL CHECK (kind IN ('access', 'correction', 'erasure')),
    status        text NOT NULL DEFAULT 'open'
                  CHECK (status IN ('open', 'in_progress', 'completed', 'rejected')),
    channel       text NOT NULL DEFAULT 'admin' CHECK (channel IN ('admin', 'form', 'email')),
    requested_by  uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    due_at        timestamptz NOT NULL,
    completed_at  timestamptz,
    outcome       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK ((status IN ('completed', 'rejected')) = (completed_at IS NOT NULL))
);
CREATE INDEX data_subject_requests_tenant_due_idx
    ON nigredo_leads.data_subject_requests (tenant_id, status, due_at);
SELECT public.attach_updated_at('nigredo_leads.data_subject_requests');
SELECT public.enable_tenant_rls('nigredo_leads.data_subject_requests');

CREATE FUNCTION nigredo_leads.dsr_due_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.due_at := NEW.created_at + interval '15 days';
    RETURN NEW;
END
$$;
CREATE TRIGGER dsr_due_at BEFORE INSERT OR UPDATE ON nigredo_leads.data_subject_requests
    FOR EACH ROW EXECUTE FUNCTION nigredo_leads.dsr_due_at();

-- Daily metrics: contacted and replied leads beside the existing counts.
ALTER TABLE nigredo_leads.metricas_diarias
    ADD COLUMN contacted integer NOT NULL DEFAULT 0 CHECK (contacted >= 0),
    ADD COLUMN replied integer NOT NULL DEFAULT 0 CHECK (replied >= 0);
