-- Subscriptions, payments (provider events), trials and commercial requests.

-- A tenant's plan over time; at most one current row per tenant.
CREATE TABLE public.tenant_subscriptions (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    plan_id     uuid NOT NULL REFERENCES public.subscription_plans (id) ON DELETE RESTRICT,
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'ended')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    ended_at    timestamptz,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at IS NULL OR ended_at >= started_at)
);
CREATE UNIQUE INDEX tenant_subscriptions_current_key
    ON public.tenant_subscriptions (tenant_id) WHERE status = 'active';
CREATE INDEX tenant_subscriptions_tenant_idx
    ON public.tenant_subscriptions (tenant_id, started_at DESC);
SELECT public.attach_updated_at('public.tenant_subscriptions');
SELECT public.enable_tenant_rls('public.tenant_subscriptions');

-- The billing provider's view of a subscription.
CREATE TABLE public.subscriptions (
    id                        uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id                 uuid NOT NULL
                              REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    plan_id                   uuid NOT NULL REFERENCES public.subscription_plans (id) ON DELETE RESTRICT,
    provider                  text NOT NULL DEFAULT 'manual'
                              CHECK (provider IN ('stripe', 'mercadopago', 'pagarme', 'manual')),
    provider_subscription_id  text,
    status                    text NOT NULL
                              CHECK (status IN ('active', 'past_due', 'canceled', 'trialing')),
    billing_interval          text NOT NULL DEFAULT 'month' CHECK (billing_interval IN ('month', 'year')),
    amount                    numeric(12, 2) NOT NULL CHECK (amount >= 0),
    currency                  char(3) NOT NULL DEFAULT 'BRL' CHECK (currency ~ '^[A-Z]{3}$'),
    current_period_start      timestamptz NOT NULL DEFAULT now(),
    current_period_end        timestamptz,
    trial_ends_at             timestamptz,
    cancel_at_period_end      boolean NOT NULL DEFAULT false,
    canceled_at               timestamptz,
    metadata                  jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, provider, provider_subscription_id)
);
CREATE UNIQUE INDEX subscriptions_one_live_per_tenant_key
    ON public.subscriptions (tenant_id) WHERE status IN ('active', 'past_due', 'trialing');
SELECT public.attach_updated_at('public.subscriptions');
SELECT public.enable_tenant_rls('public.subscriptions');

-- Every provider webhook, once: the unique key is the provider's own event id, which makes
-- redelivered events idempotent. Not tenant-owned: the tenant is learnt from the payload.
CREATE TABLE public.payment_events (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    provider           text NOT NULL CHECK (provider IN ('stripe', 'mercadopago', 'pagarme', 'manual')),
    provider_event_id  text NOT NULL,
    event_type         text NOT NULL,
    subscription_id    uuid REFERENCES public.subscriptions (id) ON DELETE SET NULL,
    amount             numeric(12, 2),
    currency           char(3) CHECK (currency ~ '^[A-Z]{3}$'),
    status             text NOT NULL DEFAULT 'received'
                       CHECK (status IN ('received', 'processed', 'ignored', 'failed')),
    payload            jsonb NOT NULL,
    error              text,
    received_at        timestamptz NOT NULL DEFAULT now(),
    processed_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (provider, provider_event_id)
);
CREATE INDEX payment_events_subscription_idx ON public.payment_events (subscription_id);
SELECT public.attach_updated_at('public.payment_events');

CREATE TABLE public.trials (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    user_id       uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    agent_id      uuid REFERENCES alquimista_platform.agents (id) ON DELETE CASCADE,
    subnucleo_id  uuid REFERENCES public.subnucleos (id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'expired', 'converted', 'canceled')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    max_usage     integer NOT NULL CHECK (max_usage > 0),
    usage_count   integer NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
    ended_at      timestamptz,
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(agent_id, subnucleo_id) = 1),
    CHECK (expires_at > started_at)
);
-- One trial per tenant and target, ever.
CREATE UNIQUE INDEX trials_tenant_agent_key ON public.trials (tenant_id, agent_id)
    WHERE agent_id IS NOT NULL;
CREATE UNIQUE INDEX trials_tenant_subnucleo_key ON public.trials (tenant_id, subnucleo_id)
    WHERE subnucleo_id IS NOT NULL;
CREATE INDEX trials_active_expiry_idx ON public.trials (tenant_id, expires_at)
    WHERE status = 'active';
SELECT public.attach_updated_at('public.trials');
SELECT public.enable_tenant_rls('public.trials');

-- Expire active trials that passed expires_at or used up max_usage; returns how many.
-- Trials are tenant-isolated, so it scopes itself to each tenant in turn (it works for any
-- caller allowed to update trials, RLS included) and restores the caller's tenant setting.
CREATE FUNCTION public.expire_trials() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         integer;
    total         integer := 0;
BEGIN
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        UPDATE public.trials
        SET status = 'expired', ended_at = now()
        WHERE tenant_id = tenant
          AND status = 'active'
          AND (expires_at <= now() OR usage_count >= max_usage);
        GET DIAGNOSTICS batch = ROW_COUNT;
        total := total + batch;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN total;
END
$$;

-- "Talk to sales" requests from the public site; they precede any tenant.
CREATE TABLE public.commercial_requests (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    company_name  text NOT NULL,
    contact_name  text NOT NULL,
    email         text NOT NULL CHECK (email LIKE '%_@_%'),
    phone         text,
    tax_id        text,
    plan_id       uuid REFERENCES public.subscription_plans (id) ON DELETE SET NULL,
    subnucleo_ids uuid[] NOT NULL DEFAULT '{}',
    message       text,
    status        text NOT NULL DEFAULT 'new'
                  CHECK (status IN ('new', 'contacted', 'qualified', 'won', 'lost', 'spam')),
    consent_given boolean NOT NULL DEFAULT false,
    consent_at    timestamptz,
    source        text NOT NULL DEFAULT 'website',
    metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX commercial_requests_status_idx ON public.commercial_requests (status, created_at DESC);
SELECT public.attach_updated_at('public.commercial_requests');
