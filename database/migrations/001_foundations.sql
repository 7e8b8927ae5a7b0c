-- Extensions, schemas and the helpers every later file uses to keep the conventions:
-- updated_at maintained by a trigger, and tenant isolation by forced row-level security.
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE SCHEMA IF NOT EXISTS alquimista_platform;
CREATE SCHEMA IF NOT EXISTS nigredo_leads;
CREATE SCHEMA IF NOT EXISTS fibonacci_core;

CREATE FUNCTION public.set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;

-- Attach the updated_at trigger to a table (migrations call it right after CREATE TABLE).
CREATE FUNCTION public.attach_updated_at(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'CREATE TRIGGER set_updated_at BEFORE UPDATE ON %s '
        'FOR EACH ROW EXECUTE FUNCTION public.set_updated_at()',
        target
    );
END
$$;

-- Tenant isolation: an unset or empty app.current_tenant_id compares with NULL, so it sees
-- and writes nothing. FORCE makes the policy bind the table owner too.
CREATE FUNCTION public.enable_tenant_rls(target regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
    EXECUTE format(
        $policy$CREATE POLICY tenant_isolation ON %s
            USING (tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)
            WITH CHECK (tenant_id = nullif(current_setting('app.current_tenant_id', true), '')::uuid)
        $policy$,
        target
    );
END
$$;

REVOKE EXECUTE ON FUNCTION public.attach_updated_at(regclass) FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION public.enable_tenant_rls(regclass) FROM PUBLIC;
