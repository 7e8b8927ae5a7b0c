-- Fibonacci, the orchestrator: its events, trace spans and metrics, per tenant.

CREATE TABLE fibonacci_core.events (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    event_type      text NOT NULL,
    source          text NOT NULL,
    agent_id        uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    trace_id        text,
    correlation_id  text,
    payload         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'received'
                    CHECK (status IN ('received', 'processing', 'processed', 'failed')),
    occurred_at     timestamptz NOT NULL DEFAULT now(),
    processed_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_tenant_time_idx ON fibonacci_core.events (tenant_id, occurred_at DESC);
CREATE INDEX events_tenant_trace_idx ON fibonacci_core.events (tenant_id, trace_id);
SELECT public.attach_updated_at('fibonacci_core.events');
SELECT public.enable_tenant_rls('fibonacci_core.events');

CREATE TABLE fibonacci_core.traces (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    trace_id        text NOT NULL,
    span_id         text NOT NULL,
    parent_span_id  text,
    name            text NOT NULL,
    agent_id        uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    status          text NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'error', 'unset')),
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    duration_ms     integer CHECK (duration_ms >= 0),
    attributes      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, trace_id, span_id)
);
CREATE INDEX traces_tenant_time_idx ON fibonacci_core.traces (tenant_id, started_at DESC);
SELECT public.attach_updated_at('fibonacci_core.traces');
SELECT public.enable_tenant_rls('fibonacci_core.traces');

CREATE TABLE fibonacci_core.metrics (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    name         text NOT NULL,
    value        double precision NOT NULL,
    unit         text NOT NULL DEFAULT 'count',
    agent_id     uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    dimensions   jsonb NOT NULL DEFAULT '{}'::jsonb,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX metrics_tenant_name_time_idx
    ON fibonacci_core.metrics (tenant_id, name, recorded_at DESC);
SELECT public.attach_updated_at('fibonacci_core.metrics');
SELECT public.enable_tenant_rls('fibonacci_core.metrics');
