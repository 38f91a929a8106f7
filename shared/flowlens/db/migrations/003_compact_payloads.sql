-- Raw deliveries are written once and read rarely (audit, `flowlens events payload`): they are
-- stored compressed by ingest (an LZ4 frame; zlib in rows written before LZ4 was used), which
-- costs ~0.01 ms of the function's CPU per 25 KB payload and saves the database its jsonb
-- parse, pglz compression and ~7x the stored bytes (~0.6 ms per delivery; docs/BENCHMARKS.md).
-- EXTERNAL: no second compression attempt.
-- Feed messages are written once and read back as text: json, not jsonb, keeps them valid
-- JSON without a parse on every write and a re-serialisation on every read.
ALTER TABLE raw_events ALTER COLUMN payload TYPE bytea
    USING convert_to(payload::text, 'UTF8');
ALTER TABLE raw_events ALTER COLUMN payload SET STORAGE EXTERNAL;
ALTER TABLE change_feed ALTER COLUMN payload TYPE json USING payload::json;
