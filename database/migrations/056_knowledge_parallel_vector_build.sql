-- Let the vector index build in parallel. PostgreSQL sizes a CREATE INDEX's parallel workers
-- from the table's main fork, and the embeddings' vectors live in TOAST: 20,000 rows of
-- vector(1536) leave a 2.8 MB main fork, under min_parallel_table_scan_size (8 MB), so the HNSW
-- build (scripts/ingest_documents.py --rebuild-index, or any REINDEX) ran in the leader alone.
-- With the table's own setting the build takes max_parallel_maintenance_workers helpers
-- (2 by default): 47 s instead of 97 s for 20,000 rows on the 2-core benchmark machine
-- (docs/benchmarks.md). Queries are unaffected: they read the table through its indexes.
ALTER TABLE knowledge.embeddings SET (parallel_workers = 2);
