"""Limits and defaults of chat with RAG, in one place."""

from __future__ import annotations

from typing import Final

EMBEDDING_DIMENSION: Final = 1536
TITLE_SIMILARITY_THRESHOLD: Final = 0.9
# Reciprocal rank fusion: score = sum over the rankings of 1 / (RRF_K + rank).
RRF_K: Final = 60
# Each ranking contributes this many candidates per requested result before fusion.
CANDIDATES_PER_RESULT: Final = 4
# With iterative scans a filtered search still returns its k results. pgvector's default, 40,
# was measured against 100 on 20,000 x 1536-d (2026-12-02, same load, docs/benchmarks.md): every
# row 5.47 vs 6.52 ms p50 (Chroma 3.09 / 3.61 in those runs: the same ratio), a tenant's 10 %
# 44.0 vs 26.9 ms (Chroma 29.5 / 34.5): a tenant-filtered search, which every chat message's is,
# iterates more with the smaller candidate list. So 100.
HNSW_EF_SEARCH: Final = 100
# A scope (a tenant's rows and the global ones) holding at most this many vectors of the model is
# searched exactly instead of through the HNSW index (knowledge.search_chunks_v2). Measured on
# 20,000 x 1536-d in one table (2026-12-02, docs/benchmarks.md): the exact scan costs ~1.6-2 us a
# row (2,000 rows 3.2 ms, 4,000 7.5 ms, 6,000 12 ms) and the same every time; the filtered HNSW
# scan 7.5-60 ms for 2,000 rows (10 %, varying with the graph), 3 ms for 4,000 and 2 ms for
# 6,000. The crossover lies near 3,000 here and higher in a larger table (the same rows are a
# smaller share of it, which the graph scan pays for); every HNSW search pays the count of the
# scope up to this cap (~0.1 us a row).
EXACT_SEARCH_MAX_ROWS: Final = 3000
CHUNK_MAX_TOKENS: Final = 350
CHUNK_OVERLAP_TOKENS: Final = 50
EMBEDDING_BATCH_SIZE: Final = 64
RESERVATION_TTL_S: Final = 5 * 60
DEFAULT_MONTHLY_TOKENS: Final = 1_000_000
MAX_DOCUMENT_BYTES: Final = 20 * 1024 * 1024
# Originals are uploaded under documents/<tenant_id>/<document_id>/<filename>.
DOCUMENTS_PREFIX: Final = "documents/"
