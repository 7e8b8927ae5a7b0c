-- Members and roles managed by tenant admins (lambdas/members): every tenant keeps at least one
-- active admin, enforced here for every writer, and race-safe.

-- The permissions of the members routes (002 seeded them; kept here so the routes' contract
-- does not depend on that seed alone).
INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('members:read', 'List members and their roles'),
    ('members:manage', 'Invite, remove and change the role of members')
ON CONFLICT (code) DO NOTHING;

INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
JOIN alquimista_platform.permissions AS p ON
    CASE r.name
        WHEN 'admin' THEN p.code IN ('members:read', 'members:manage')
        WHEN 'member' THEN p.code = 'members:read'
        WHEN 'viewer' THEN p.code = 'members:read'
        ELSE false
    END
ON CONFLICT (role_id, permission_id) DO NOTHING;

-- A change that takes away an active admin membership (a demotion, a suspension, a removal)
-- must leave the tenant another active admin. Concurrent changes are serialised on the tenant
-- row (FOR NO KEY UPDATE: foreign-key checks, which take FOR KEY SHARE, are not blocked), and
-- the count runs after the lock with a fresh snapshot (READ COMMITTED), so of two concurrent
-- demotions of the last two admins the second sees the first and is refused.
-- Deleting the tenant or the user row (an operator's erasure) cascades here and is let through.
CREATE FUNCTION alquimista_platform.memberships_keep_an_admin() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    admin_role uuid;
BEGIN
    SELECT r.id INTO admin_role FROM alquimista_platform.roles AS r WHERE r.name = 'admin';
    IF OLD.status <> 'active' OR OLD.role_id IS DISTINCT FROM admin_role
       OR (TG_OP = 'UPDATE' AND NEW.status = 'active' AND NEW.role_id = admin_role
           AND NEW.tenant_id = OLD.tenant_id) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    PERFORM 1 FROM alquimista_platform.tenants AS t WHERE t.id = OLD.tenant_id
    FOR NO KEY UPDATE;
    IF NOT FOUND
       OR NOT EXISTS (SELECT 1 FROM alquimista_platform.users AS u WHERE u.id = OLD.user_id) THEN
        RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM alquimista_platform.memberships AS m
        WHERE m.tenant_id = OLD.tenant_id AND m.id <> OLD.id
          AND m.status = 'active' AND m.role_id = admin_role
    ) THEN
        RAISE EXCEPTION 'a tenant keeps at least one active admin'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'memberships_last_admin';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
CREATE TRIGGER memberships_keep_an_admin
    BEFORE UPDATE OR DELETE ON alquimista_platform.memberships
    FOR EACH ROW EXECUTE FUNCTION alquimista_platform.memberships_keep_an_admin();
