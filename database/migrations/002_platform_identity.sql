-- Tenants, users (identity by the Cognito sub) and normalized RBAC: roles, permissions,
-- role_permissions and memberships (one per tenant and user). Roles and permissions are
-- reference data and are seeded here.

CREATE TABLE alquimista_platform.tenants (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    legal_name  text,
    tax_id      text,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'trial', 'suspended', 'canceled')),
    country     char(2) NOT NULL DEFAULT 'BR',
    timezone    text NOT NULL DEFAULT 'America/Sao_Paulo',
    locale      text NOT NULL DEFAULT 'pt-BR',
    settings    jsonb NOT NULL DEFAULT '{}'::jsonb,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('alquimista_platform.tenants');

CREATE TABLE alquimista_platform.users (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    cognito_sub    uuid NOT NULL UNIQUE,
    email          text NOT NULL CHECK (email LIKE '%_@_%'),
    full_name      text,
    status         text NOT NULL DEFAULT 'active'
                   CHECK (status IN ('active', 'invited', 'disabled')),
    locale         text NOT NULL DEFAULT 'pt-BR',
    last_login_at  timestamptz,
    metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_key ON alquimista_platform.users (lower(email));
SELECT public.attach_updated_at('alquimista_platform.users');

CREATE TABLE alquimista_platform.roles (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name         text NOT NULL UNIQUE CHECK (name ~ '^[a-z_]+$'),
    description  text NOT NULL,
    rank         smallint NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('alquimista_platform.roles');

CREATE TABLE alquimista_platform.permissions (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code         text NOT NULL UNIQUE CHECK (code ~ '^[a-z_]+:[a-z_]+$'),
    description  text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);
SELECT public.attach_updated_at('alquimista_platform.permissions');

CREATE TABLE alquimista_platform.role_permissions (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    role_id        uuid NOT NULL REFERENCES alquimista_platform.roles (id) ON DELETE CASCADE,
    permission_id  uuid NOT NULL REFERENCES alquimista_platform.permissions (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (role_id, permission_id)
);
CREATE INDEX role_permissions_permission_idx ON alquimista_platform.role_permissions (permission_id);
SELECT public.attach_updated_at('alquimista_platform.role_permissions');

CREATE TABLE alquimista_platform.memberships (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES alquimista_platform.tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES alquimista_platform.users (id) ON DELETE CASCADE,
    role_id     uuid NOT NULL REFERENCES alquimista_platform.roles (id) ON DELETE RESTRICT,
    status      text NOT NULL DEFAULT 'active'
                CHECK (status IN ('active', 'invited', 'suspended')),
    invited_by  uuid REFERENCES alquimista_platform.users (id) ON DELETE SET NULL,
    joined_at   timestamptz,
    metadata    jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX memberships_user_idx ON alquimista_platform.memberships (user_id);
SELECT public.attach_updated_at('alquimista_platform.memberships');
SELECT public.enable_tenant_rls('alquimista_platform.memberships');

INSERT INTO alquimista_platform.roles (name, description, rank) VALUES
    ('viewer', 'Reads the tenant''s data', 10),
    ('member', 'Works with agents, leads and chat', 20),
    ('admin', 'Manages the tenant, its members, billing and policies', 30);

INSERT INTO alquimista_platform.permissions (code, description) VALUES
    ('tenant:read', 'See the tenant''s profile'),
    ('tenant:manage', 'Change the tenant''s profile and settings'),
    ('members:read', 'List members and their roles'),
    ('members:manage', 'Invite, remove and change the role of members'),
    ('agents:read', 'See the agent catalog and the tenant''s activations'),
    ('agents:activate', 'Activate and deactivate agents'),
    ('plans:read', 'See plans and sub-cores'),
    ('billing:read', 'See subscriptions and payments'),
    ('billing:manage', 'Subscribe, change plan and cancel'),
    ('leads:read', 'See leads, campaigns and interactions'),
    ('leads:write', 'Create and change leads and campaigns'),
    ('leads:export', 'Export personal data of leads'),
    ('approvals:read', 'See approval requests'),
    ('approvals:decide', 'Approve or reject requests'),
    ('policies:manage', 'Change the tenant''s policies'),
    ('audit:read', 'Read the audit log'),
    ('chat:use', 'Chat with agents'),
    ('knowledge:read', 'Read the knowledge base'),
    ('knowledge:write', 'Add and remove knowledge base documents');

INSERT INTO alquimista_platform.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM alquimista_platform.roles AS r
JOIN alquimista_platform.permissions AS p ON
    CASE r.name
        WHEN 'admin' THEN true
        WHEN 'member' THEN p.code IN (
            'tenant:read', 'members:read', 'agents:read', 'agents:activate', 'plans:read',
            'billing:read', 'leads:read', 'leads:write', 'approvals:read', 'chat:use',
            'knowledge:read', 'knowledge:write')
        WHEN 'viewer' THEN p.code IN (
            'tenant:read', 'members:read', 'agents:read', 'plans:read', 'billing:read',
            'leads:read', 'approvals:read', 'knowledge:read')
    END;
