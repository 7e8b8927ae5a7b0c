-- The changes feed's rows were written by a row-level trigger (031's record_change): one
-- plpgsql call and one single-row upsert per written lead, campaign, interaction or meeting.
-- A sync push writes 1,000 rows in one statement, and those 1,000 upserts were half of the
-- backend's time in its INSERT (1,000 meeting creates: 250 ms of backend CPU with the trigger,
-- 120 ms without, load 9). Now each statement's rows are upserted in one statement, from the
-- statement's transition table. Same rows, same transaction id; the order of seq inside one
-- transaction was never part of the feed's contract (a cursor moves past a whole transaction).
-- A trigger with transition tables serves one event, hence three per table.
CREATE FUNCTION nigredo_leads.record_changes() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM nigredo_leads.changes AS c
        USING old_rows AS o
        WHERE c.tenant_id = o.tenant_id AND c.entity = TG_ARGV[0] AND c.entity_id = o.id;
        RETURN NULL;
    END IF;
    INSERT INTO nigredo_leads.changes AS c (tenant_id, entity, entity_id, op, version)
    SELECT n.tenant_id, TG_ARGV[0], n.id,
           CASE WHEN n.deleted_at IS NULL THEN 'upsert' ELSE 'delete' END, n.version
    FROM new_rows AS n
    ON CONFLICT (tenant_id, entity, entity_id) DO UPDATE
        SET op = EXCLUDED.op, version = EXCLUDED.version,
            txid = pg_current_xact_id(), seq = nextval('nigredo_leads.changes_seq');
    RETURN NULL;
END
$$;

DO $$
DECLARE
    target record;
BEGIN
    FOR target IN SELECT * FROM (VALUES ('leads', 'lead'), ('campanhas', 'campaign'),
                                        ('interacoes', 'interaction'), ('agendamentos', 'meeting'))
                  AS t (tbl, entity)
    LOOP
        EXECUTE format('DROP TRIGGER record_change ON nigredo_leads.%I', target.tbl);
        EXECUTE format(
            'CREATE TRIGGER record_changes_insert AFTER INSERT ON nigredo_leads.%I '
            'REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION nigredo_leads.record_changes(%L)',
            target.tbl, target.entity);
        EXECUTE format(
            'CREATE TRIGGER record_changes_update AFTER UPDATE ON nigredo_leads.%I '
            'REFERENCING NEW TABLE AS new_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION nigredo_leads.record_changes(%L)',
            target.tbl, target.entity);
        EXECUTE format(
            'CREATE TRIGGER record_changes_delete AFTER DELETE ON nigredo_leads.%I '
            'REFERENCING OLD TABLE AS old_rows '
            'FOR EACH STATEMENT EXECUTE FUNCTION nigredo_leads.record_changes(%L)',
            target.tbl, target.entity);
    END LOOP;
END
$$;

DROP FUNCTION nigredo_leads.record_change();
