-- The agent catalog, sub-cores ("subnúcleos") and plans, and what each tenant holds of them.

CREATE TABLE alquimista_platform.agents (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug         text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name         text NOT NULL,
    description  text NOT NULL DEFAULT '',
    category     text NOT NULL CHECK (category ~ '^[a-z0-9_]+$'),
    status       text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'beta', 'retired')),
    version      text NOT NULL DEFAULT '1.0.0',
    requires_approval boolean NOT NULL DEFAULT false,
    config       jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_category_idx ON alquimista_platform.agents (category);
SELECT public.attach_updated_at('alquimista_platform.agents');

CREATE TABLE public.subnucleos (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug           text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name           text NOT NULL,
    description    text NOT NULL DEFAULT '',
    price_monthly  numeric(12, 2) NOT NULL DEFAULT 0 CHECK (price_monthly >= 0),
    currency       char(3) NOT NULL DEFAULT 'BRL' CHECK (currency ~ '^[A-Z]{3}$'),
    is_active      boolean NOT NULL DEFAULT true,
    sort_order     integer NOT NULL DEFAULT 0,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('public.subnucleos');

CREATE TABLE public.subnucleo_agents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    subnucleo_id  uuid NOT NULL REFERENCES public.subnucleos (id) ON DELETE CASCADE,
    agent_id      uuid NOT NULL REFERENCES alquimista_platform.agents (id) ON DELETE CASCADE,
    sort_order    integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (subnucleo_id, agent_id)
);
CREATE INDEX subnucleo_agents_agent_idx ON public.subnucleo_agents (agent_id);
SELECT public.attach_updated_at('public.subnucleo_agents');

CREATE TABLE public.subscription_plans (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                 text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name                 text NOT NULL,
    description          text NOT NULL DEFAULT '',
    price_monthly        numeric(12, 2) NOT NULL CHECK (price_monthly >= 0),
    price_yearly         numeric(12, 2) CHECK (price_yearly >= 0),
    currency             char(3) NOT NULL DEFAULT 'BRL' CHECK (currency ~ '^[A-Z]{3}$'),
    max_users            integer CHECK (max_users > 0),
    max_agents           integer CHECK (max_agents > 0),
    max_subnucleos       integer CHECK (max_subnucleos > 0),
    monthly_token_quota  bigint CHECK (monthly_token_quota >= 0),
    trial_days           integer NOT NULL DEFAULT 0 CHECK (trial_days >= 0),
    features             jsonb NOT NULL DEFAULT '[]'::jsonb,
    is_active            boolean NOT NULL DEFAULT true,
    sort_order           integer NOT NULL DEFAULT 0,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('public.subscription_plans');

CREATE TABLE public.subscription_plan_subnucleos (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    plan_id       uuid NOT NULL REFERENCES public.subscription_plans (id) ON DELETE CASCADE,
    subnucleo_id  uuid NOT NULL REFERENCES public.subnucleos (id) ON DELETE RESTRICT,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (plan_id, subnucleo_id)
);
CREATE INDEX subscription_plan_subnucleos_subnucleo_idx
    ON public.subscription_plan_subnucleos (subnucleo_id);
SELECT public.attach_updated_at('public.subscription_plan_subnucleos');

CREATE TABLE public.tenant_subnucleos (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    subnucleo_id    uuid NOT NULL REFERENCES public.subnucleos (id) ON DELETE RESTRICT,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    activated_at    timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, subnucleo_id)
);
SELECT public.attach_updated_at('public.tenant_subnucleos');
SELECT public.enable_tenant_rls('public.tenant_subnucleos');

-- What a tenant is entitled to use, and where the entitlement comes from.
CREATE TABLE public.tenant_agents (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    agent_id      uuid NOT NULL REFERENCES alquimista_platform.agents (id) ON DELETE RESTRICT,
    source        text NOT NULL CHECK (source IN ('plan', 'subnucleo', 'trial', 'addon')),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, agent_id)
);
SELECT public.attach_updated_at('public.tenant_agents');
SELECT public.enable_tenant_rls('public.tenant_agents');

-- Which agents a tenant has switched on, with its configuration.
CREATE TABLE alquimista_platform.agent_activations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    agent_id        uuid NOT NULL REFERENCES alquimista_platform.agents (id) ON DELETE RESTRICT,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'paused', 'deactivated')),
    activated_by    uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    activated_at    timestamptz NOT NULL DEFAULT now(),
    deactivated_at  timestamptz,
    config          jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, agent_id)
);
SELECT public.attach_updated_at('alquimista_platform.agent_activations');
SELECT public.enable_tenant_rls('alquimista_platform.agent_activations');
