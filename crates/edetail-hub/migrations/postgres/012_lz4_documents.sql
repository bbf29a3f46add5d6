-- Hub schema, version 12 (issue 15): analysis documents compressed with LZ4 instead of pglz.
-- An HCP document (about 22 kB at 10 M events) is read and rewritten by every batch that
-- analyses one of her calls, and PostgreSQL compresses values over 2 kB when it stores them
-- out of line (TOAST) with pglz by default; LZ4 rewrote 44 kB documents about 4x faster in a
-- psql measurement on the bench machine, at the same size (ADR 0020). Applies to values written from
-- now on; existing ones are read as they are (each datum records its own method). A server
-- built without LZ4 keeps pglz (the statement is skipped with a notice, not failed).
DO $$
BEGIN
    EXECUTE 'ALTER TABLE analytics_docs ALTER COLUMN doc SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
    RAISE NOTICE 'LZ4 is not available on this server: analysis documents stay pglz-compressed';
END
$$;
