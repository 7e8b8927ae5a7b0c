"""Limits and defaults of chat with RAG, in one place."""

from __future__ import annotations

from typing import Final

EMBEDDING_DIMENSION: Final = 1536
TITLE_SIMILARITY_THRESHOLD: Final = 0.9
# Reciprocal rank fusion: score = sum over the rankings of 1 / (RRF_K + rank).
RRF_K: Final = 60
# Each ranking contributes this many candidates per requested result before fusion.
CANDIDATES_PER_RESULT: Final = 4
# The HNSW scan's candidate list. 100 while every tenant-filtered search went through the graph:
# a tenant's 10 % iterated more with 40 (44.0 vs 26.9 ms, 2026-12-02 morning). Since those scopes
# are searched exactly (EXACT_SEARCH_MAX_ROWS), the graph serves scopes of more rows, where 40 was
# measured on 20,000 x 1536-d (2026-12-02, 11:30 UTC): every row 1.10 vs 1.55 ms in the server,
# recall@10 0.998 vs 1.000; scopes of 20 %, 30 % and 50 % of the rows 1.07-1.19 vs 1.20-1.41 ms,
# recall 1.000 both (pgvector's default is 40).
HNSW_EF_SEARCH: Final = 40
# A scope (a tenant's rows and the global ones) holding at most this many vectors of the model is
# searched exactly instead of through the HNSW index (knowledge.search_chunks_v3). Measured on
# 20,000 x 1536-d in one table (2026-12-02, docs/benchmarks.md): the exact scan costs ~1.6-2 us a
# row (2,000 rows 3.2 ms, 4,000 7.5 ms, 6,000 12 ms) and the same every time; the filtered HNSW
# scan 7.5-60 ms for 2,000 rows (10 %, varying with the graph), 3 ms for 4,000 and 2 ms for
# 6,000. The crossover lies near 3,000 here and higher in a larger table (the same rows are a
# smaller share of it, which the graph scan pays for); every HNSW search pays the count of the
# scope up to this cap (~0.1 us a row).
EXACT_SEARCH_MAX_ROWS: Final = 3000
# Vectors the index_chat_embeddings job inserts into the HNSW graph per run (~4 ms each).
INDEX_BATCH_ROWS: Final = 2000
CHUNK_MAX_TOKENS: Final = 350
CHUNK_OVERLAP_TOKENS: Final = 50
EMBEDDING_BATCH_SIZE: Final = 64
RESERVATION_TTL_S: Final = 5 * 60
DEFAULT_MONTHLY_TOKENS: Final = 1_000_000
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
# Originals are uploaded under documents/<tenant_id>/<document_id>/<filename>.
DOCUMENTS_PREFIX: Final = "documents/"
