-- Audit log, human approval of sensitive agent actions, and notifications.

CREATE TABLE alquimista_platform.audit_logs (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE RESTRICT,
    actor_user_id  uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    actor_type     text NOT NULL DEFAULT 'user' CHECK (actor_type IN ('user', 'agent', 'system')),
    action         text NOT NULL,
    resource_type  text NOT NULL,
    resource_id    text,
    outcome        text NOT NULL DEFAULT 'success' CHECK (outcome IN ('success', 'denied', 'error')),
    request_id     text,
    source_ip      inet,
    user_agent     text,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    occurred_at    timestamptz NOT NULL DEFAULT now(),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_logs_tenant_time_idx
    ON alquimista_platform.audit_logs (tenant_id, occurred_at DESC);
CREATE INDEX audit_logs_tenant_resource_idx
    ON alquimista_platform.audit_logs (tenant_id, resource_type, resource_id);
SELECT public.attach_updated_at('alquimista_platform.audit_logs');
SELECT public.enable_tenant_rls('alquimista_platform.audit_logs');

CREATE TABLE alquimista_platform.approval_requests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    requested_by  uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    agent_id      uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    action_type   text NOT NULL,
    summary       text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'approved', 'rejected', 'expired', 'canceled')),
    required_approvals smallint NOT NULL DEFAULT 1 CHECK (required_approvals > 0),
    expires_at    timestamptz,
    decided_at    timestamptz,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX approval_requests_tenant_status_idx
    ON alquimista_platform.approval_requests (tenant_id, status, created_at DESC);
SELECT public.attach_updated_at('alquimista_platform.approval_requests');
SELECT public.enable_tenant_rls('alquimista_platform.approval_requests');

CREATE TABLE alquimista_platform.approval_decisions (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id            uuid NOT NULL
                         REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    approval_request_id  uuid NOT NULL
                         REFERENCES alquimista_platform.approval_requests (id) ON DELETE CASCADE,
    decided_by           uuid NOT NULL
                         REFERENCES alquimista_platform.users (id) ON DELETE RESTRICT,
    decision             text NOT NULL CHECK (decision IN ('approved', 'rejected')),
    comment              text,
    decided_at           timestamptz NOT NULL DEFAULT now(),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, approval_request_id, decided_by)
);
SELECT public.attach_updated_at('alquimista_platform.approval_decisions');
SELECT public.enable_tenant_rls('alquimista_platform.approval_decisions');

CREATE TABLE alquimista_platform.notifications (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    user_id     uuid REFERENCES alquimista_platform.users (id) ON DELETE CASCADE,
    channel     text NOT NULL DEFAULT 'in_app' CHECK (channel IN ('in_app', 'email', 'webhook')),
    kind        text NOT NULL,
    title       text NOT NULL,
    body        text NOT NULL DEFAULT '',
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    status      text NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'sent', 'failed', 'read')),
    sent_at     timestamptz,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notifications_tenant_user_idx
    ON alquimista_platform.notifications (tenant_id, user_id, created_at DESC);
SELECT public.attach_updated_at('alquimista_platform.notifications');
SELECT public.enable_tenant_rls('alquimista_platform.notifications');
