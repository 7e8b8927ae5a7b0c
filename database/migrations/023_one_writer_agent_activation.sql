-- The legacy pair public.tenant_agents (which entitlement switched an agent on, and whether it
-- is on) and alquimista_platform.agent_activations (who switched it on, when, and when off)
-- record one fact. This function is their only writer, so the two rows never disagree: the
-- agents repository calls it for activation and deactivation alike.
--
-- SECURITY INVOKER (the default): both writes run under the caller's tenant setting, so RLS
-- refuses a row of any other tenant. Versioned by name: a change of contract is a _v2 beside
-- it, never an edit of this one.
--
-- p_active: true switches the agent on with p_source ('plan' | 'trial' | ...) by p_actor_id;
-- false switches it off (p_source and p_actor_id are ignored) and returns no row when the
-- tenant never activated the agent.
CREATE FUNCTION alquimista_platform.set_agent_activation_v1(
    p_tenant_id uuid,
    p_agent_id uuid,
    p_active boolean,
    p_source text DEFAULT NULL,
    p_actor_id uuid DEFAULT NULL
) RETURNS TABLE (
    agent_id uuid,
    status text,
    source text,
    activated_at timestamptz,
    activated_by uuid,
    deactivated_at timestamptz
)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF p_active THEN
        IF p_source IS NULL THEN
            RAISE EXCEPTION 'an activation needs its entitlement source'
                USING ERRCODE = 'not_null_violation';
        END IF;
        INSERT INTO public.tenant_agents AS ta (tenant_id, agent_id, source, status)
        VALUES (p_tenant_id, p_agent_id, p_source, 'active')
        ON CONFLICT ON CONSTRAINT tenant_agents_tenant_id_agent_id_key
        DO UPDATE SET source = EXCLUDED.source, status = 'active';

        RETURN QUERY
        INSERT INTO alquimista_platform.agent_activations AS aa
            (tenant_id, agent_id, status, activated_by, activated_at)
        VALUES (p_tenant_id, p_agent_id, 'active', p_actor_id, now())
        ON CONFLICT ON CONSTRAINT agent_activations_tenant_id_agent_id_key DO UPDATE SET
            status = 'active', activated_by = EXCLUDED.activated_by,
            activated_at = EXCLUDED.activated_at, deactivated_at = NULL
        RETURNING aa.agent_id, aa.status, p_source, aa.activated_at, aa.activated_by,
                  aa.deactivated_at;
    ELSE
        UPDATE public.tenant_agents AS ta SET status = 'inactive'
        WHERE ta.tenant_id = p_tenant_id AND ta.agent_id = p_agent_id;

        RETURN QUERY
        UPDATE alquimista_platform.agent_activations AS aa
        SET status = 'deactivated', deactivated_at = now()
        WHERE aa.tenant_id = p_tenant_id AND aa.agent_id = p_agent_id
        RETURNING aa.agent_id, aa.status, NULL::text, aa.activated_at, aa.activated_by,
                  aa.deactivated_at;
    END IF;
END
$$;
