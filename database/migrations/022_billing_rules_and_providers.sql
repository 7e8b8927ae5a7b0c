-- Billing rules with one home each, and what real payment providers need.
--
-- Rules that several writers use live in versioned SQL functions (a changed rule is a new
-- _vN beside the old one, so nothing that still calls the old one changes meaning silently):
--   public.subscription_is_live_v1(status)  which statuses count as the tenant's live subscription
--   public.trial_is_usable_v1(trial)         whether a trial can still be used now
-- The legacy pair subscriptions / tenant_subscriptions gets one writer: a trigger on
-- subscriptions keeps the plan history in tenant_subscriptions, whoever writes the subscription.

CREATE FUNCTION public.subscription_is_live_v1(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN status IN ('active', 'past_due', 'trialing');

CREATE FUNCTION public.trial_is_usable_v1(t public.trials) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN t.status = 'active' AND t.expires_at > now() AND t.usage_count < t.max_usage;

-- The one-live-subscription-per-tenant index states its predicate through the rule.
DROP INDEX public.subscriptions_one_live_per_tenant_key;
CREATE UNIQUE INDEX subscriptions_one_live_per_tenant_key
    ON public.subscriptions (tenant_id) WHERE public.subscription_is_live_v1(status);

CREATE OR REPLACE FUNCTION public.expire_trials() RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    batch         integer;
    total         integer := 0;
BEGIN
    FOR tenant IN SELECT id FROM alquimista_platform.tenants ORDER BY id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        UPDATE public.trials AS t
        SET status = 'expired', ended_at = now()
        WHERE t.tenant_id = tenant
          AND t.status = 'active'
          AND NOT public.trial_is_usable_v1(t);
        GET DIAGNOSTICS batch = ROW_COUNT;
        total := total + batch;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
    RETURN total;
END
$$;

-- tenant_subscriptions follows subscriptions: a subscription that becomes live, or changes
-- plan while live, opens a plan period (ending the previous one); one that stops being live
-- ends it. Runs as the writer, under the writer's tenant scope (RLS applies).
CREATE FUNCTION public.sync_tenant_subscription_v1() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    was_live boolean := TG_OP = 'UPDATE' AND public.subscription_is_live_v1(OLD.status);
    is_live  boolean := public.subscription_is_live_v1(NEW.status);
BEGIN
    IF was_live AND is_live AND OLD.plan_id = NEW.plan_id THEN
        RETURN NULL;
    END IF;
    IF was_live OR is_live THEN
        UPDATE public.tenant_subscriptions SET status = 'ended', ended_at = now()
        WHERE tenant_id = NEW.tenant_id AND status = 'active';
    END IF;
    IF is_live THEN
        INSERT INTO public.tenant_subscriptions (tenant_id, plan_id)
        VALUES (NEW.tenant_id, NEW.plan_id);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER sync_tenant_subscription
    AFTER INSERT OR UPDATE OF status, plan_id ON public.subscriptions
    FOR EACH ROW EXECUTE FUNCTION public.sync_tenant_subscription_v1();

-- Payment providers: a provider subscription is found by the provider's own ids.
ALTER TABLE public.subscriptions
    ADD COLUMN provider_customer_id text,
    -- when the provider last changed this subscription (its event's time): an older event
    -- delivered late does not overwrite a newer state
    ADD COLUMN provider_updated_at timestamptz;
CREATE INDEX subscriptions_provider_customer_idx
    ON public.subscriptions (tenant_id, provider, provider_customer_id)
    WHERE provider_customer_id IS NOT NULL;

-- The subscription a verified provider event is about, in whichever tenant holds it: ours by
-- id (a checkout's client_reference_id), else the provider's subscription id, else its
-- customer id (the live subscription first). Subscriptions are tenant-isolated and the
-- runtime role cannot bypass RLS, so it looks in each tenant in turn (one index probe each,
-- like expire_trials) and restores the caller's tenant setting.
CREATE FUNCTION public.billing_locate_subscription_v1(
    p_provider text,
    p_subscription_id uuid,
    p_provider_subscription_id text,
    p_provider_customer_id text
) RETURNS TABLE (tenant_id uuid, subscription_id uuid)
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
    found_id      uuid;
BEGIN
    FOR tenant IN SELECT t.id FROM alquimista_platform.tenants AS t ORDER BY t.id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        SELECT s.id INTO found_id
        FROM public.subscriptions AS s
        WHERE s.tenant_id = tenant
          AND (s.id = p_subscription_id
               OR (s.provider = p_provider AND s.provider_subscription_id = p_provider_subscription_id)
               OR (s.provider = p_provider AND s.provider_customer_id = p_provider_customer_id))
        ORDER BY s.id = p_subscription_id DESC NULLS LAST,
                 s.provider_subscription_id = p_provider_subscription_id DESC NULLS LAST,
                 public.subscription_is_live_v1(s.status) DESC,
                 s.created_at DESC
        LIMIT 1;
        IF found_id IS NOT NULL THEN
            tenant_id := tenant;
            subscription_id := found_id;
            PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
            RETURN NEXT;
            RETURN;
        END IF;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
END
$$;
