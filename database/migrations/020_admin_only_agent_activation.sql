-- Activating and deactivating agents changes what a tenant uses and pays for, so it is an
-- admin action (viewer reads, member reads and writes, admin also manages agents, plans and
-- billing). 002 granted agents:activate to member as well; take it back.
DELETE FROM alquimista_platform.role_permissions AS rp
USING alquimista_platform.roles AS r, alquimista_platform.permissions AS p
WHERE rp.role_id = r.id
  AND rp.permission_id = p.id
  AND r.name = 'member'
  AND p.code = 'agents:activate';
