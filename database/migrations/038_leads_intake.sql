-- Leads intake: outreach sent once per idempotency key, public capture forms, provider webhook
-- logs without the payload in clear, and CSV imports with their rejection report.
-- docs/leads.md ("Outreach", "Public forms", "CSV import") explains the choices.

-- One row per outreach attempt, claimed before the e-mail leaves: a replayed key finds it and
-- sends nothing. Subject and body are not kept (the interaction holds the body until erasure).
CREATE TABLE nigredo_leads.outreach_messages (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL
                         REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id              uuid NOT NULL REFERENCES nigredo_leads.leads (id) ON DELETE CASCADE,
    idempotency_key      text NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    purpose              text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 100),
    status               text NOT NULL DEFAULT 'sending' CHECK (status IN ('sending', 'sent')),
    provider_message_id  text,
    interaction_id       uuid REFERENCES nigredo_leads.interacoes (id) ON DELETE SET NULL,
    evaluation_id        uuid,
    requested_by         uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    sent_at              timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT outreach_messages_key UNIQUE (tenant_id, idempotency_key),
    CHECK ((status = 'sent') = (sent_at IS NOT NULL AND provider_message_id IS NOT NULL))
);
CREATE INDEX outreach_messages_tenant_lead_idx
    ON nigredo_leads.outreach_messages (tenant_id, lead_id, created_at);
SELECT public.attach_updated_at('nigredo_leads.outreach_messages');
SELECT public.enable_tenant_rls('nigredo_leads.outreach_messages');

-- A public capture form: which fields it takes, which are required, the consent text shown and
-- its version, and the purposes the consent covers.
CREATE TABLE nigredo_leads.lead_forms (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL
                          REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    name                  text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    fields                text[] NOT NULL CHECK (
                              cardinality(fields) > 0
                              AND fields <@ ARRAY['full_name', 'email', 'phone', 'company',
                                                  'job_title']::text[]),
    required_fields       text[] NOT NULL DEFAULT '{}',
    consent_text          text NOT NULL CHECK (length(consent_text) BETWEEN 1 AND 5000),
    consent_text_version  text NOT NULL CHECK (length(consent_text_version) BETWEEN 1 AND 100),
    purposes              text[] NOT NULL CHECK (cardinality(purposes) > 0),
    campanha_id           uuid REFERENCES nigredo_leads.campanhas (id) ON DELETE SET NULL,
    max_per_ip_per_hour   integer NOT NULL DEFAULT 10 CHECK (max_per_ip_per_hour BETWEEN 1 AND 10000),
    active                boolean NOT NULL DEFAULT true,
    created_by            uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lead_forms_tenant_name_key UNIQUE (tenant_id, name),
    CHECK (required_fields <@ fields),
    CHECK ('email' = ANY (fields) OR 'phone' = ANY (fields))
);
SELECT public.attach_updated_at('nigredo_leads.lead_forms');
SELECT public.enable_tenant_rls('nigredo_leads.lead_forms');
-- The public submission names only the form: before the tenant is known, one active form is
-- readable by the id the request names (set with set_config('app.public_form_id', ..., true)).
-- Nothing can be listed this way, and nothing written.
CREATE POLICY public_form_lookup ON nigredo_leads.lead_forms FOR SELECT
    USING (active AND id::text = current_setting('app.public_form_id', true));

ALTER TABLE nigredo_leads.form_submissions
    ADD COLUMN form_id uuid REFERENCES nigredo_leads.lead_forms (id) ON DELETE SET NULL,
    ADD COLUMN consent_text_version text CHECK (length(consent_text_version) BETWEEN 1 AND 100);
CREATE INDEX form_submissions_tenant_form_idx
    ON nigredo_leads.form_submissions (tenant_id, form_id, submitted_at);
CREATE INDEX form_submissions_tenant_lead_idx
    ON nigredo_leads.form_submissions (tenant_id, lead_id);

-- Inbound provider webhooks: whether the signature verified and the payload's SHA-256, so a
-- delivery can be matched without keeping personal data in the log.
ALTER TABLE nigredo_leads.webhook_logs
    ADD COLUMN signature_valid boolean NOT NULL DEFAULT false,
    ADD COLUMN payload_sha256 text CHECK (payload_sha256 ~ '^[0-9a-f]{64}$');

-- CSV imports: one row per file; all or nothing; the report names each rejected row.
CREATE TABLE nigredo_leads.lead_imports (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL
                   REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    object_key     text NOT NULL CHECK (length(object_key) BETWEEN 1 AND 1024),
    status         text NOT NULL DEFAULT 'awaiting_upload'
                   CHECK (status IN ('awaiting_upload', 'processing', 'completed', 'rejected')),
    legal_basis    text NOT NULL DEFAULT 'legitimate_interest'
                   CHECK (legal_basis IN ('consent', 'legitimate_interest')),
    campanha_id    uuid REFERENCES nigredo_leads.campanhas (id) ON DELETE SET NULL,
    -- false: one bad row refuses the whole file; true: the valid rows go in, the rest reported
    skip_invalid   boolean NOT NULL DEFAULT false,
    total_rows     integer CHECK (total_rows >= 0),
    imported_rows  integer CHECK (imported_rows >= 0),
    rejected_rows  integer CHECK (rejected_rows >= 0),
    report         jsonb NOT NULL DEFAULT '[]'::jsonb,
    error          text,
    requested_by   uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    finished_at    timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT lead_imports_object_key UNIQUE (tenant_id, object_key),
    CHECK ((status IN ('completed', 'rejected')) = (finished_at IS NOT NULL))
);
CREATE INDEX lead_imports_tenant_created_idx
    ON nigredo_leads.lead_imports (tenant_id, created_at DESC);
SELECT public.attach_updated_at('nigredo_leads.lead_imports');
SELECT public.enable_tenant_rls('nigredo_leads.lead_imports');

-- Defining public capture forms (what they ask and the consent text shown) is an admin's.
INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('leads:forms', 'Define the public lead capture forms and their consent text')
ON CONFLICT (code) DO NOTHING;
INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
JOIN alquimista_platform.permissions AS p ON p.code = 'leads:forms'
WHERE r.name = 'admin'
ON CONFLICT (role_id, permission_id) DO NOTHING;
