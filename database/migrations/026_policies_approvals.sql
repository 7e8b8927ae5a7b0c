-- Policies (versioned rules, a per-tenant default, persisted evaluations) and human approvals
-- with quorum, separation of duties, expiry and escalation. The approval invariants live in
-- triggers, so they hold for every writer: the runtime role cannot decide, approve or reopen a
-- request with a plain INSERT or UPDATE that the rules would refuse.
--
-- Refusals raise with a constraint name (and a SQLSTATE) that the repositories map to domain
-- errors in one place; messages never carry request content.

-- Permissions of the feature. policies:manage (002) stays for compatibility; the routes use
-- read/write. approvals:read already exists (viewer, member, admin), approvals:decide is admin's.
INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('policies:read', 'See the tenant''s policy rules and dry-run them'),
    ('policies:write', 'Create, change and deactivate the tenant''s policy rules'),
    ('approvals:request', 'Ask for the approval of a sensitive action')
ON CONFLICT (code) DO NOTHING;

INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
JOIN alquimista_platform.permissions AS p ON
    CASE r.name
        WHEN 'admin' THEN p.code IN (
            'policies:read', 'policies:write', 'approvals:read', 'approvals:decide',
            'approvals:request')
        WHEN 'member' THEN p.code IN ('policies:read', 'approvals:read', 'approvals:request')
        ELSE false
    END
ON CONFLICT (role_id, permission_id) DO NOTHING;

-- Rules. A rule is identified by rule_id; each edit inserts version + 1 and clears is_current
-- on the previous row. Version rows are immutable, so an evaluation's (rule_id, version) keeps
-- meaning what it meant when it decided.
CREATE TABLE alquimista_platform.policy_rules (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL
                        REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    rule_id             uuid NOT NULL DEFAULT gen_random_uuid(),
    version             integer NOT NULL CHECK (version > 0),
    is_current          boolean NOT NULL DEFAULT true,
    name                text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    priority            integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -100000 AND 100000),
    active              boolean NOT NULL DEFAULT true,
    effect              text NOT NULL CHECK (effect IN ('allow', 'block', 'require_approval')),
    matcher             jsonb NOT NULL CHECK (jsonb_typeof(matcher) = 'object'),
    required_approvals  smallint CHECK (required_approvals BETWEEN 1 AND 10),
    approval_ttl_s      integer CHECK (approval_ttl_s BETWEEN 60 AND 2592000),
    escalate_after_s    integer CHECK (escalate_after_s > 0),
    escalation_role     text REFERENCES alquimista_platform.roles (name) ON DELETE SET NULL,
    created_by          uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    metadata            jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_rules_version_key UNIQUE (tenant_id, rule_id, version),
    CONSTRAINT policy_rules_approval_settings CHECK (
        (effect = 'require_approval') = (required_approvals IS NOT NULL)
        AND (effect = 'require_approval' OR (approval_ttl_s IS NULL AND escalate_after_s IS NULL
                                             AND escalation_role IS NULL))
        AND (escalate_after_s IS NULL OR approval_ttl_s IS NULL
             OR escalate_after_s < approval_ttl_s)
    )
);
CREATE UNIQUE INDEX policy_rules_current_key
    ON alquimista_platform.policy_rules (tenant_id, rule_id) WHERE is_current;
CREATE INDEX policy_rules_tenant_active_idx
    ON alquimista_platform.policy_rules (tenant_id, priority DESC) WHERE is_current AND active;
SELECT public.attach_updated_at('alquimista_platform.policy_rules');
SELECT public.enable_tenant_rls('alquimista_platform.policy_rules');

CREATE FUNCTION alquimista_platform.policy_rules_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Only "this version is no longer the current one" may change on a version row.
    IF (to_jsonb(NEW) - 'is_current' - 'updated_at') <> (to_jsonb(OLD) - 'is_current' - 'updated_at')
       OR (NEW.is_current AND NOT OLD.is_current) THEN
        RAISE EXCEPTION 'a policy rule version cannot be changed; create a new version'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'policy_rules_versions_immutable';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER policy_rules_guard BEFORE UPDATE ON alquimista_platform.policy_rules
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.policy_rules_guard();

-- The effect when no rule matches. No row means 'allow'.
CREATE TABLE alquimista_platform.policy_settings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL
                    REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    default_effect  text NOT NULL DEFAULT 'allow'
                    CHECK (default_effect IN ('allow', 'block', 'require_approval')),
    default_required_approvals smallint NOT NULL DEFAULT 1
                    CHECK (default_required_approvals BETWEEN 1 AND 10),
    updated_by      uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_settings_tenant_key UNIQUE (tenant_id)
);
SELECT public.attach_updated_at('alquimista_platform.policy_settings');
SELECT public.enable_tenant_rls('alquimista_platform.policy_settings');

-- Every evaluation, with the rule version that decided (NULL: the tenant's default) and a
-- SHA-256 of the canonical inputs; the subject's text is never stored here.
CREATE TABLE alquimista_platform.policy_evaluations (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL
                   REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    subject_kind   text NOT NULL CHECK (subject_kind ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    subject_id     text CHECK (length(subject_id) BETWEEN 1 AND 200),
    rule_id        uuid,
    rule_version   integer,
    verdict        text NOT NULL CHECK (verdict IN ('allow', 'block', 'require_approval')),
    reason         text NOT NULL CHECK (length(reason) <= 2000),
    inputs_hash    text NOT NULL CHECK (inputs_hash ~ '^[0-9a-f]{64}$'),
    dry_run        boolean NOT NULL DEFAULT false,
    requested_by   uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    agent_id       uuid REFERENCES alquimista_platform.agents (id) ON DELETE SET NULL,
    evaluated_at   timestamptz NOT NULL DEFAULT now(),
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policy_evaluations_rule_fkey FOREIGN KEY (tenant_id, rule_id, rule_version)
        REFERENCES alquimista_platform.policy_rules (tenant_id, rule_id, version)
        ON DELETE SET NULL (rule_id, rule_version),
    CONSTRAINT policy_evaluations_rule_pair CHECK ((rule_id IS NULL) = (rule_version IS NULL))
);
CREATE INDEX policy_evaluations_tenant_time_idx
    ON alquimista_platform.policy_evaluations (tenant_id, evaluated_at DESC);
CREATE INDEX policy_evaluations_tenant_subject_idx
    ON alquimista_platform.policy_evaluations (tenant_id, subject_kind, subject_id);
SELECT public.attach_updated_at('alquimista_platform.policy_evaluations');
SELECT public.enable_tenant_rls('alquimista_platform.policy_evaluations');

-- Approval requests: what is to be approved, by whom it was asked, how many must approve,
-- until when, and whom to escalate to.
ALTER TABLE alquimista_platform.approval_requests
    ADD COLUMN subject_kind text
        CHECK (subject_kind ~ '^[a-z][a-z_]*(\.[a-z][a-z_]*)+$'),
    ADD COLUMN subject_id text CHECK (length(subject_id) BETWEEN 1 AND 200),
    ADD COLUMN requester_kind text NOT NULL DEFAULT 'user'
        CHECK (requester_kind IN ('user', 'agent')),
    ADD COLUMN evaluation_id uuid
        REFERENCES alquimista_platform.policy_evaluations (id) ON DELETE SET NULL,
    ADD COLUMN escalate_at timestamptz,
    ADD COLUMN escalation_role text
        REFERENCES alquimista_platform.roles (name) ON DELETE SET NULL,
    ADD COLUMN escalated_at timestamptz,
    ADD COLUMN canceled_by uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    ADD CONSTRAINT approval_requests_escalation_before_expiry
        CHECK (escalate_at IS NULL OR expires_at IS NULL OR escalate_at < expires_at),
    ADD CONSTRAINT approval_requests_quorum_bounded CHECK (required_approvals <= 10);

CREATE UNIQUE INDEX approval_requests_one_pending_per_subject
    ON alquimista_platform.approval_requests (tenant_id, subject_kind, subject_id)
    WHERE status = 'pending' AND subject_kind IS NOT NULL AND subject_id IS NOT NULL;
CREATE INDEX approval_requests_tenant_requester_idx
    ON alquimista_platform.approval_requests (tenant_id, requested_by, created_at DESC);
CREATE INDEX approval_requests_tenant_due_idx
    ON alquimista_platform.approval_requests (tenant_id, expires_at) WHERE status = 'pending';
CREATE INDEX approval_requests_evaluation_idx
    ON alquimista_platform.approval_requests (tenant_id, evaluation_id);

-- Decisions carry a required reason (legacy rows take their comment, or say they had none).
ALTER TABLE alquimista_platform.approval_decisions ADD COLUMN reason text;
UPDATE alquimista_platform.approval_decisions
SET reason = coalesce(nullif(btrim(comment), ''), 'recorded before reasons were required');
ALTER TABLE alquimista_platform.approval_decisions
    ALTER COLUMN reason SET NOT NULL,
    ADD CONSTRAINT approval_decisions_reason_required
        CHECK (length(btrim(reason)) BETWEEN 1 AND 2000);
ALTER TABLE alquimista_platform.approval_decisions
    RENAME CONSTRAINT approval_decisions_tenant_id_approval_request_id_decided_by_key
    TO approval_decisions_one_per_decider;
CREATE INDEX approval_decisions_tenant_decider_idx
    ON alquimista_platform.approval_decisions (tenant_id, decided_by);

-- Whether a user holds a permission in a tenant (the join of auth_repository.py).
CREATE FUNCTION alquimista_platform.holds_permission_v1(
    p_tenant_id uuid, p_user_id uuid, p_permission text
) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1
        FROM alquimista_platform.memberships AS m
        JOIN alquimista_platform.users AS u ON u.id = m.user_id AND u.status = 'active'
        JOIN alquimista_platform.tenants AS t
          ON t.id = m.tenant_id AND t.status IN ('active', 'trial')
        JOIN alquimista_platform.role_permissions AS rp ON rp.role_id = m.role_id
        JOIN alquimista_platform.permissions AS p
          ON p.id = rp.permission_id AND p.code = p_permission
        WHERE m.tenant_id = p_tenant_id AND m.user_id = p_user_id AND m.status = 'active'
    )
$$;

-- A new request starts pending, unexpired, with a subject and a requester.
CREATE FUNCTION alquimista_platform.approval_requests_insert_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'pending' OR NEW.decided_at IS NOT NULL OR NEW.escalated_at IS NOT NULL
       OR NEW.canceled_by IS NOT NULL THEN
        RAISE EXCEPTION 'an approval request starts pending'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_start_pending';
    END IF;
    IF NEW.subject_kind IS NULL OR NEW.subject_id IS NULL THEN
        RAISE EXCEPTION 'an approval request names its subject'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_subject_required';
    END IF;
    IF (NEW.requester_kind = 'user' AND NEW.requested_by IS NULL)
       OR (NEW.requester_kind = 'agent' AND NEW.agent_id IS NULL) THEN
        RAISE EXCEPTION 'an approval request names its requester'
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'approval_requests_requester_required';
    END IF;
    IF NEW.expires_at IS NULL OR NEW.expires_at <= now() THEN
        RAISE EXCEPTION 'an approval request expires in the future'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_expiry_required';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER approval_requests_insert_guard
    BEFORE INSERT ON alquimista_platform.approval_requests
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.approval_requests_insert_guard();

-- A request changes only along pending -> approved | rejected | expired | canceled, each step
-- backed by what justifies it; what was asked (subject, payload, quorum, requester) is fixed.
CREATE FUNCTION alquimista_platform.approval_requests_update_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    approvals  integer;
    rejections integer;
    allowed    boolean;
BEGIN
    -- ON DELETE SET NULL may clear a reference, but only once its target is really gone
    -- (clearing requested_by by hand would otherwise open the door to self-approval).
    IF (NEW.requested_by IS NULL AND OLD.requested_by IS NOT NULL AND EXISTS (
            SELECT 1 FROM alquimista_platform.users WHERE id = OLD.requested_by))
       OR (NEW.agent_id IS NULL AND OLD.agent_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM alquimista_platform.agents WHERE id = OLD.agent_id))
       OR (NEW.evaluation_id IS NULL AND OLD.evaluation_id IS NOT NULL AND EXISTS (
            SELECT 1 FROM alquimista_platform.policy_evaluations WHERE id = OLD.evaluation_id))
       OR (NEW.escalation_role IS NULL AND OLD.escalation_role IS NOT NULL AND EXISTS (
            SELECT 1 FROM alquimista_platform.roles WHERE name = OLD.escalation_role))
       OR (NEW.tenant_id, NEW.subject_kind, NEW.subject_id, NEW.payload, NEW.required_approvals,
           NEW.requester_kind, coalesce(NEW.requested_by, OLD.requested_by),
           coalesce(NEW.agent_id, OLD.agent_id), NEW.action_type,
           coalesce(NEW.evaluation_id, OLD.evaluation_id), NEW.expires_at, NEW.escalate_at,
           coalesce(NEW.escalation_role, OLD.escalation_role), NEW.created_at)
          IS DISTINCT FROM
          (OLD.tenant_id, OLD.subject_kind, OLD.subject_id, OLD.payload, OLD.required_approvals,
           OLD.requester_kind, OLD.requested_by, OLD.agent_id, OLD.action_type,
           OLD.evaluation_id, OLD.expires_at, OLD.escalate_at, OLD.escalation_role,
           OLD.created_at) THEN
        RAISE EXCEPTION 'what an approval request asks cannot change'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_immutable';
    END IF;
    IF NEW.escalated_at IS DISTINCT FROM OLD.escalated_at THEN
        IF OLD.escalated_at IS NOT NULL OR OLD.status <> 'pending' OR NEW.escalate_at IS NULL
           OR NEW.escalate_at > now() THEN
            RAISE EXCEPTION 'only a pending request past escalate_at is escalated, once'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_escalation';
        END IF;
    END IF;
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        IF NEW.decided_at IS DISTINCT FROM OLD.decided_at
           OR NEW.canceled_by IS DISTINCT FROM OLD.canceled_by THEN
            RAISE EXCEPTION 'an approval request is decided only by changing its status'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_transition';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD.status <> 'pending' THEN
        RAISE EXCEPTION 'the approval request is no longer pending'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_terminal';
    END IF;
    SELECT count(*) FILTER (WHERE d.decision = 'approved'),
           count(*) FILTER (WHERE d.decision = 'rejected')
    INTO approvals, rejections
    FROM alquimista_platform.approval_decisions AS d
    WHERE d.tenant_id = NEW.tenant_id AND d.approval_request_id = NEW.id;
    allowed := CASE NEW.status
        WHEN 'approved' THEN rejections = 0 AND approvals >= NEW.required_approvals
        WHEN 'rejected' THEN rejections > 0
        WHEN 'expired' THEN NEW.expires_at <= now()
        WHEN 'canceled' THEN NEW.canceled_by IS NOT NULL
                             AND NEW.canceled_by IS NOT DISTINCT FROM NEW.requested_by
        ELSE false
    END;
    IF NOT coalesce(allowed, false) THEN
        RAISE EXCEPTION 'the approval request cannot become % now', NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_transition';
    END IF;
    IF NEW.status <> 'canceled' AND NEW.canceled_by IS NOT NULL THEN
        RAISE EXCEPTION 'only a canceled request names who canceled it'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_requests_transition';
    END IF;
    NEW.decided_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER approval_requests_update_guard
    BEFORE UPDATE ON alquimista_platform.approval_requests
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.approval_requests_update_guard();

-- A decision is accepted only on a pending, unexpired request of the same tenant, from a user
-- who holds approvals:decide there and did not ask for it, once per user. The request row is
-- locked first, so concurrent decisions on one request are serialised: after an approval
-- reaches the quorum or a rejection lands, the next decider finds it no longer pending.
CREATE FUNCTION alquimista_platform.approval_decisions_insert_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    request alquimista_platform.approval_requests%ROWTYPE;
BEGIN
    SELECT * INTO request
    FROM alquimista_platform.approval_requests
    WHERE id = NEW.approval_request_id AND tenant_id = NEW.tenant_id
    FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'approval request not found'
            USING ERRCODE = 'foreign_key_violation',
                  CONSTRAINT = 'approval_decisions_request_in_tenant';
    END IF;
    IF request.status <> 'pending' THEN
        RAISE EXCEPTION 'the approval request is no longer pending'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_decisions_request_pending';
    END IF;
    IF request.expires_at IS NOT NULL AND request.expires_at <= now() THEN
        RAISE EXCEPTION 'the approval request has expired'
            USING ERRCODE = 'check_violation',
                  CONSTRAINT = 'approval_decisions_request_unexpired';
    END IF;
    IF request.requested_by IS NOT NULL AND NEW.decided_by = request.requested_by THEN
        RAISE EXCEPTION 'a requester cannot decide their own request'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_decisions_not_self';
    END IF;
    IF NOT alquimista_platform.holds_permission_v1(
        NEW.tenant_id, NEW.decided_by, 'approvals:decide'
    ) THEN
        RAISE EXCEPTION 'the decider may not decide approvals in this tenant'
            USING ERRCODE = 'insufficient_privilege',
                  CONSTRAINT = 'approval_decisions_decider_permitted';
    END IF;
    NEW.decided_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER approval_decisions_insert_guard
    BEFORE INSERT ON alquimista_platform.approval_decisions
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.approval_decisions_insert_guard();

-- The decision's consequence, in the same statement: any rejection rejects; approvals reaching
-- the quorum approve (one guarded UPDATE; the update guard re-checks the counts).
CREATE FUNCTION alquimista_platform.approval_decisions_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.decision = 'rejected' THEN
        UPDATE alquimista_platform.approval_requests
        SET status = 'rejected'
        WHERE id = NEW.approval_request_id AND tenant_id = NEW.tenant_id AND status = 'pending';
    ELSE
        UPDATE alquimista_platform.approval_requests AS r
        SET status = 'approved'
        WHERE r.id = NEW.approval_request_id AND r.tenant_id = NEW.tenant_id
          AND r.status = 'pending'
          AND (SELECT count(*) FROM alquimista_platform.approval_decisions AS d
               WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
                 AND d.decision = 'approved') >= r.required_approvals;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER approval_decisions_apply
    AFTER INSERT ON alquimista_platform.approval_decisions
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.approval_decisions_apply();

-- Decisions are append-only.
CREATE FUNCTION alquimista_platform.approval_decisions_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) - 'updated_at') <> (to_jsonb(OLD) - 'updated_at') THEN
        RAISE EXCEPTION 'an approval decision cannot be changed'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'approval_decisions_immutable';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER approval_decisions_immutable
    BEFORE UPDATE ON alquimista_platform.approval_decisions
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.approval_decisions_immutable();

-- The one entry point for a decision: record it (the triggers above enforce every rule) and
-- return the request's state afterwards. SECURITY INVOKER on purpose: the rules are in the
-- triggers, which bind every writer, and the caller's tenant scoping (RLS) stays in force, so
-- another tenant's request is simply not found.
CREATE FUNCTION alquimista_platform.decide_approval_v1(
    p_request_id uuid, p_decider uuid, p_decision text, p_reason text
) RETURNS TABLE (
    decision_id uuid, status text, approvals integer, required_approvals integer
)
LANGUAGE plpgsql AS $$
DECLARE
    tenant uuid := nullif(current_setting('app.current_tenant_id', true), '')::uuid;
    new_id uuid;
BEGIN
    INSERT INTO alquimista_platform.approval_decisions
        (tenant_id, approval_request_id, decided_by, decision, reason, comment)
    VALUES (tenant, p_request_id, p_decider, p_decision, p_reason, p_reason)
    RETURNING id INTO new_id;
    RETURN QUERY
    SELECT new_id, r.status,
           (SELECT count(*)::integer FROM alquimista_platform.approval_decisions AS d
            WHERE d.tenant_id = r.tenant_id AND d.approval_request_id = r.id
              AND d.decision = 'approved'),
           r.required_approvals::integer
    FROM alquimista_platform.approval_requests AS r
    WHERE r.id = p_request_id AND r.tenant_id = tenant;
END
$$;

-- The sweeper: expire pending requests past expires_at and escalate those past escalate_at,
-- tenant by tenant (RLS stays on; like public.expire_trials), restoring the caller's tenant.
-- Returns what changed so the caller can notify and emit events.
CREATE FUNCTION alquimista_platform.sweep_approvals_v1(p_limit integer DEFAULT 500)
RETURNS TABLE (
    tenant_id uuid, request_id uuid, change text, escalation_role text, requested_by uuid
)
LANGUAGE plpgsql AS $$
DECLARE
    caller_tenant text := current_setting('app.current_tenant_id', true);
    tenant        uuid;
BEGIN
    FOR tenant IN SELECT t.id FROM alquimista_platform.tenants AS t ORDER BY t.id LOOP
        PERFORM set_config('app.current_tenant_id', tenant::text, true);
        RETURN QUERY
        WITH due AS (
            SELECT r.id FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = tenant AND r.status = 'pending' AND r.expires_at <= now()
            ORDER BY r.expires_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        )
        UPDATE alquimista_platform.approval_requests AS r
        SET status = 'expired'
        FROM due WHERE r.id = due.id
        RETURNING r.tenant_id, r.id, 'expired'::text, r.escalation_role, r.requested_by;
        RETURN QUERY
        WITH due AS (
            SELECT r.id FROM alquimista_platform.approval_requests AS r
            WHERE r.tenant_id = tenant AND r.status = 'pending' AND r.escalated_at IS NULL
              AND r.escalate_at <= now()
            ORDER BY r.escalate_at
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        )
        UPDATE alquimista_platform.approval_requests AS r
        SET escalated_at = now()
        FROM due WHERE r.id = due.id
        RETURNING r.tenant_id, r.id, 'escalated'::text, r.escalation_role, r.requested_by;
    END LOOP;
    PERFORM set_config('app.current_tenant_id', coalesce(caller_tenant, ''), true);
END
$$;
