-- The platform's own audit chain: writes that belong to no tenant (a public "talk to sales"
-- request, a webhook that matched no subscription, a refused webhook signature) are recorded
-- in the chain of this reserved tenant, whose id is the nil UUID the outbox already uses for
-- platform events. No user can be a member of it: no membership row is ever written for it,
-- and its status keeps it out of every tenant-scoped lookup that requires 'active' or 'trial'.
INSERT INTO alquimista_platform.tenants (id, slug, name, status, metadata)
VALUES (
    '00000000-0000-0000-0000-000000000000',
    'platform',
    'Platform (records with no tenant)',
    'suspended',
    '{"reserved": true}'::jsonb
)
ON CONFLICT (id) DO NOTHING;

-- A public request has no authenticated actor: it is recorded as 'anonymous'.
ALTER TABLE alquimista_platform.audit_logs DROP CONSTRAINT audit_logs_actor_type_check;
ALTER TABLE alquimista_platform.audit_logs ADD CONSTRAINT audit_logs_actor_type_check
    CHECK (actor_type IN ('user', 'agent', 'system', 'anonymous'));
