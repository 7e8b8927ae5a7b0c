-- Nigredo: lead prospecting under the LGPD (legal basis and consent recorded per lead,
-- suppression through the blocklist, retention and anonymisation dates).

CREATE TABLE nigredo_leads.campanhas (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    name             text NOT NULL,
    description      text NOT NULL DEFAULT '',
    channel          text NOT NULL
                     CHECK (channel IN ('email', 'whatsapp', 'linkedin', 'phone', 'multichannel')),
    status           text NOT NULL DEFAULT 'draft'
                     CHECK (status IN ('draft', 'active', 'paused', 'completed', 'archived')),
    starts_at        timestamptz,
    ends_at          timestamptz,
    budget           numeric(12, 2) CHECK (budget >= 0),
    currency         char(3) NOT NULL DEFAULT 'BRL' CHECK (currency ~ '^[A-Z]{3}$'),
    target_criteria  jsonb NOT NULL DEFAULT '{}'::jsonb,
    agent_id         uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    created_by       uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    metadata         jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name),
    CHECK (ends_at IS NULL OR starts_at IS NULL OR ends_at > starts_at)
);
SELECT public.attach_updated_at('nigredo_leads.campanhas');
SELECT public.enable_tenant_rls('nigredo_leads.campanhas');

CREATE TABLE nigredo_leads.leads (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id             uuid NOT NULL
                          REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    campanha_id           uuid REFERENCES nigredo_leads.campanhas (id) ON DELETE SET NULL,
    assigned_to           uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    full_name             text,
    email                 text,
    phone                 text,
    company               text,
    company_tax_id        text,
    job_title             text,
    source                text NOT NULL DEFAULT 'manual'
                          CHECK (source IN ('manual', 'import', 'form', 'api', 'agent', 'referral')),
    status                text NOT NULL DEFAULT 'new'
                          CHECK (status IN ('new', 'contacted', 'qualified', 'meeting_scheduled',
                                            'won', 'lost', 'opted_out')),
    score                 smallint CHECK (score BETWEEN 0 AND 100),
    tags                  text[] NOT NULL DEFAULT '{}',
    -- LGPD (Lei 13.709/2018): legal basis of the processing and the consent trail.
    legal_basis           text NOT NULL DEFAULT 'consent'
                          CHECK (legal_basis IN ('consent', 'legitimate_interest', 'contract')),
    consent_status        text NOT NULL DEFAULT 'unknown'
                          CHECK (consent_status IN ('unknown', 'granted', 'denied', 'withdrawn')),
    consent_purposes      text[] NOT NULL DEFAULT '{}',
    consent_given_at      timestamptz,
    consent_withdrawn_at  timestamptz,
    consent_source        text,
    consent_text_version  text,
    consent_ip            inet,
    data_retention_until  timestamptz,
    anonymized_at         timestamptz,
    last_contacted_at     timestamptz,
    metadata              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CHECK (consent_status <> 'granted' OR consent_given_at IS NOT NULL),
    CHECK (consent_status <> 'withdrawn' OR consent_withdrawn_at IS NOT NULL)
);
CREATE UNIQUE INDEX leads_tenant_email_key ON nigredo_leads.leads (tenant_id, lower(email))
    WHERE email IS NOT NULL;
CREATE INDEX leads_tenant_status_idx ON nigredo_leads.leads (tenant_id, status, created_at DESC);
CREATE INDEX leads_tenant_campanha_idx ON nigredo_leads.leads (tenant_id, campanha_id);
CREATE INDEX leads_company_trgm_idx ON nigredo_leads.leads USING gin (company gin_trgm_ops);
SELECT public.attach_updated_at('nigredo_leads.leads');
SELECT public.enable_tenant_rls('nigredo_leads.leads');

CREATE TABLE nigredo_leads.interacoes (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id      uuid NOT NULL REFERENCES nigredo_leads.leads (id) ON DELETE CASCADE,
    campanha_id  uuid REFERENCES nigredo_leads.campanhas (id) ON DELETE SET NULL,
    agent_id     uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    user_id      uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    channel      text NOT NULL
                 CHECK (channel IN ('email', 'whatsapp', 'linkedin', 'phone', 'meeting', 'other')),
    direction    text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    kind         text NOT NULL DEFAULT 'message',
    content      text,
    sentiment    text CHECK (sentiment IN ('positive', 'neutral', 'negative')),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX interacoes_tenant_lead_idx
    ON nigredo_leads.interacoes (tenant_id, lead_id, occurred_at DESC);
SELECT public.attach_updated_at('nigredo_leads.interacoes');
SELECT public.enable_tenant_rls('nigredo_leads.interacoes');

CREATE TABLE nigredo_leads.agendamentos (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id           uuid NOT NULL REFERENCES nigredo_leads.leads (id) ON DELETE CASCADE,
    owner_user_id     uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    scheduled_for     timestamptz NOT NULL,
    duration_minutes  integer NOT NULL DEFAULT 30 CHECK (duration_minutes BETWEEN 5 AND 480),
    status            text NOT NULL DEFAULT 'scheduled'
                      CHECK (status IN ('scheduled', 'confirmed', 'completed', 'canceled', 'no_show')),
    meeting_url       text,
    notes             text,
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agendamentos_tenant_time_idx
    ON nigredo_leads.agendamentos (tenant_id, scheduled_for);
CREATE INDEX agendamentos_lead_idx ON nigredo_leads.agendamentos (lead_id);
SELECT public.attach_updated_at('nigredo_leads.agendamentos');
SELECT public.enable_tenant_rls('nigredo_leads.agendamentos');

CREATE TABLE nigredo_leads.metricas_diarias (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    campanha_id         uuid REFERENCES nigredo_leads.campanhas (id) ON DELETE CASCADE,
    day                 date NOT NULL,
    leads_created       integer NOT NULL DEFAULT 0 CHECK (leads_created >= 0),
    interactions        integer NOT NULL DEFAULT 0 CHECK (interactions >= 0),
    meetings_scheduled  integer NOT NULL DEFAULT 0 CHECK (meetings_scheduled >= 0),
    conversions         integer NOT NULL DEFAULT 0 CHECK (conversions >= 0),
    cost                numeric(12, 2) NOT NULL DEFAULT 0 CHECK (cost >= 0),
    currency            char(3) NOT NULL DEFAULT 'BRL' CHECK (currency ~ '^[A-Z]{3}$'),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (tenant_id, campanha_id, day)
);
SELECT public.attach_updated_at('nigredo_leads.metricas_diarias');
SELECT public.enable_tenant_rls('nigredo_leads.metricas_diarias');

-- Suppression list: whoever is here is never contacted (opt-outs, LGPD objections).
CREATE TABLE nigredo_leads.blocklist (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('email', 'phone', 'domain')),
    value       text NOT NULL,
    reason      text NOT NULL DEFAULT 'opt_out'
                CHECK (reason IN ('opt_out', 'lgpd_request', 'bounce', 'complaint', 'manual')),
    added_by    uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, value)
);
SELECT public.attach_updated_at('nigredo_leads.blocklist');
SELECT public.enable_tenant_rls('nigredo_leads.blocklist');

CREATE TABLE nigredo_leads.form_submissions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    lead_id         uuid REFERENCES nigredo_leads.leads (id) ON DELETE SET NULL,
    form_key        text NOT NULL,
    payload         jsonb NOT NULL,
    consent_given   boolean NOT NULL DEFAULT false,
    consent_text    text,
    source_ip       inet,
    user_agent      text,
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processed', 'rejected', 'spam')),
    submitted_at    timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX form_submissions_tenant_time_idx
    ON nigredo_leads.form_submissions (tenant_id, submitted_at DESC);
SELECT public.attach_updated_at('nigredo_leads.form_submissions');
SELECT public.enable_tenant_rls('nigredo_leads.form_submissions');

CREATE TABLE nigredo_leads.webhook_logs (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    source           text NOT NULL,
    event_type       text NOT NULL,
    external_id      text,
    request_headers  jsonb NOT NULL DEFAULT '{}'::jsonb,
    payload          jsonb NOT NULL,
    response_status  smallint,
    status           text NOT NULL DEFAULT 'received'
                     CHECK (status IN ('received', 'processed', 'failed', 'ignored')),
    error            text,
    received_at      timestamptz NOT NULL DEFAULT now(),
    processed_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX webhook_logs_external_key
    ON nigredo_leads.webhook_logs (tenant_id, source, external_id) WHERE external_id IS NOT NULL;
CREATE INDEX webhook_logs_tenant_time_idx
    ON nigredo_leads.webhook_logs (tenant_id, received_at DESC);
SELECT public.attach_updated_at('nigredo_leads.webhook_logs');
SELECT public.enable_tenant_rls('nigredo_leads.webhook_logs');

CREATE TABLE nigredo_leads.rate_limits (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    bucket        text NOT NULL,
    window_start  timestamptz NOT NULL,
    window_s      integer NOT NULL CHECK (window_s > 0),
    max_count     integer NOT NULL CHECK (max_count > 0),
    count         integer NOT NULL DEFAULT 0 CHECK (count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, bucket, window_start)
);
SELECT public.attach_updated_at('nigredo_leads.rate_limits');
SELECT public.enable_tenant_rls('nigredo_leads.rate_limits');
