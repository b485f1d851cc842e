-- create_verification_request --
-- Queue an on-demand verification, or return the open one of the same product (shared).
WITH inserted AS (
    INSERT INTO verification_requests (id, merchant_id, product_id)
    SELECT $3, $1, $2
    WHERE EXISTS (SELECT 1 FROM products WHERE merchant_id = $1 AND product_id = $2)
    ON CONFLICT (merchant_id, product_id) WHERE state <> 'done' DO NOTHING
    RETURNING *
)
SELECT * FROM inserted
UNION ALL
SELECT * FROM verification_requests
WHERE merchant_id = $1 AND product_id = $2 AND state <> 'done'
  AND NOT EXISTS (SELECT 1 FROM inserted)

-- get_verification_request --
-- One verification request of a merchant.
SELECT * FROM verification_requests WHERE id = $1 AND merchant_id = $2

-- claim_on_demand --
-- Lease due on-demand requests (queued, or whose lease expired) with their product and merchant,
-- oldest first.
-- A merchant's hosts come once per merchant in the batch (on one of its rows, NULL on the
-- others), and a pending observation equal to the stored data only as pending_is_data: the
-- client then decodes neither again.
WITH due AS (
    SELECT id FROM verification_requests
    WHERE state <> 'done' AND not_before <= now()
      AND (state = 'queued' OR lease_until < now())
    ORDER BY not_before, requested_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE verification_requests r
    SET state = 'running', lease_owner = $2, lease_until = now() + make_interval(secs => $3),
        started_at = coalesce(r.started_at, now())
    FROM due
    WHERE r.id = due.id
    RETURNING r.id AS request_id, r.attempts, r.requested_at, r.not_before, r.merchant_id,
              r.product_id
)
SELECT c.request_id, c.attempts, c.requested_at, p.merchant_id, p.product_id, p.url, p.status,
       p.availability, p.data,
       CASE WHEN p.pending = p.data THEN NULL ELSE p.pending END AS pending,
       p.pending = p.data AS pending_is_data, p.pending_at, p.etag, p.last_modified,
       p.content_sha256, p.not_found_count, m.slug, m.currency,
       CASE WHEN row_number() OVER (PARTITION BY m.id) = 1 THEN m.hosts END AS hosts
FROM claimed c
JOIN products p ON p.merchant_id = c.merchant_id AND p.product_id = c.product_id
JOIN merchants m ON m.id = c.merchant_id
ORDER BY c.not_before, c.requested_at

-- claim_changed --
-- Lease products due in the `changed` lane, at most $4 per merchant, skipping merchants in $5,
-- longest due first (hosts and pending as in claim_on_demand).
WITH due AS (
    SELECT d.merchant_id, d.product_id
    FROM merchants m
    CROSS JOIN LATERAL (
        SELECT merchant_id, product_id FROM products
        WHERE merchant_id = m.id AND changed_due_at <= now()
          AND (changed_lease_until IS NULL OR changed_lease_until < now())
        ORDER BY changed_due_at
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    ) d
    WHERE m.id <> ALL($5::bigint[])
    LIMIT $1
), claimed AS (
    UPDATE products p
    SET changed_lease_until = now() + make_interval(secs => $3), changed_lease_owner = $2
    FROM due
    WHERE p.merchant_id = due.merchant_id AND p.product_id = due.product_id
    RETURNING p.changed_attempts AS attempts, now() AS claimed_at, p.merchant_id, p.product_id,
              p.url, p.status, p.availability, p.data,
              CASE WHEN p.pending = p.data THEN NULL ELSE p.pending END AS pending,
              p.pending = p.data AS pending_is_data, p.pending_at, p.etag, p.last_modified,
              p.content_sha256, p.not_found_count, p.changed_due_at
)
SELECT c.*, m.slug, m.currency,
       CASE WHEN row_number() OVER (PARTITION BY m.id) = 1 THEN m.hosts END AS hosts
FROM claimed c JOIN merchants m ON m.id = c.merchant_id
ORDER BY c.changed_due_at

-- renew_on_demand_leases --
-- Extend the leases this daemon holds on in-flight on-demand requests (rows being written are
-- skipped: locks are taken in key order and never waited for, so this cannot deadlock).
UPDATE verification_requests SET lease_until = now() + make_interval(secs => $3)
WHERE id IN (
    SELECT id FROM verification_requests
    WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND state = 'running'
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)

-- renew_changed_leases --
-- Extend the leases this daemon holds on in-flight changed-lane products (key order, rows
-- being written skipped, as above).
UPDATE products SET changed_lease_until = now() + make_interval(secs => $4)
WHERE (merchant_id, product_id) IN (
    SELECT p.merchant_id, p.product_id
    FROM products p
    JOIN unnest($1::bigint[], $2::text[]) AS k (merchant_id, product_id)
      ON p.merchant_id = k.merchant_id AND p.product_id = k.product_id
    WHERE p.changed_lease_owner = $3
    ORDER BY p.merchant_id, p.product_id
    FOR UPDATE OF p SKIP LOCKED
)

-- release_on_demand --
-- Hand back requests this daemon claimed but did not start (graceful stop).
UPDATE verification_requests SET state = 'queued', lease_owner = NULL, lease_until = NULL
WHERE id = ANY($1::uuid[]) AND lease_owner = $2 AND state = 'running'

-- release_changed --
-- Hand back changed-lane products this daemon claimed but did not start (graceful stop).
UPDATE products SET changed_lease_until = NULL, changed_lease_owner = NULL
FROM unnest($1::bigint[], $2::text[]) AS k (merchant_id, product_id)
WHERE products.merchant_id = k.merchant_id AND products.product_id = k.product_id
  AND changed_lease_owner = $3

-- apply_result --
-- Write a batch of verification outcomes onto their products (the state machine's decisions):
-- a JSON array of one object per product (keys named as the columns of r), no product twice in
-- one call. One JSON text costs the client far less to send than an array per column.
UPDATE products SET
    status = coalesce(r.status, products.status),
    data = coalesce(r.data, products.data),
    availability = CASE WHEN r.status IS NULL THEN products.availability ELSE r.availability END,
    availability_detail = CASE WHEN r.status IS NULL THEN products.availability_detail
        ELSE r.availability_detail END,
    -- only tag data older than the fetch was confirmed by it
    pending = CASE WHEN r.clear_pending AND coalesce(products.pending_at <= r.claimed_at, true)
        THEN NULL ELSE products.pending END,
    pending_at = CASE WHEN r.clear_pending AND coalesce(products.pending_at <= r.claimed_at, true)
        THEN NULL ELSE products.pending_at END,
    verified_at = CASE WHEN r.confirmed THEN now() ELSE products.verified_at END,
    source = CASE WHEN r.data IS NULL THEN products.source ELSE 'page' END,
    updated_at = CASE WHEN r.data IS NULL THEN products.updated_at ELSE now() END,
    last_checked_at = now(),
    last_outcome = r.outcome,
    last_http_status = r.http_status,
    last_error = r.error,
    etag = CASE WHEN r.set_validators THEN r.etag ELSE products.etag END,
    last_modified = CASE WHEN r.set_validators THEN r.last_modified
        ELSE products.last_modified END,
    content_sha256 = CASE WHEN r.set_validators AND r.content_sha256 IS NOT NULL
        THEN r.content_sha256 ELSE products.content_sha256 END,
    failure_count = CASE WHEN r.counts_as_failure THEN products.failure_count + 1 ELSE 0 END,
    not_found_count = r.not_found_count,
    -- the changed lane: clear the marker, or move it to the retry time; a tag that arrived
    -- while the fetch was in flight keeps it due
    changed_due_at = CASE
        WHEN NOT r.changed_lane THEN products.changed_due_at
        WHEN r.retry_at IS NOT NULL THEN r.retry_at
        WHEN products.pending_at > r.claimed_at THEN now()
        ELSE NULL END,
    changed_attempts = CASE WHEN NOT r.changed_lane THEN products.changed_attempts
        WHEN r.retry_at IS NOT NULL THEN products.changed_attempts + 1 ELSE 0 END,
    changed_lease_until = CASE WHEN r.changed_lane THEN NULL
        ELSE products.changed_lease_until END,
    changed_lease_owner = CASE WHEN r.changed_lane THEN NULL
        ELSE products.changed_lease_owner END
FROM json_to_recordset($1::json)
    AS r (merchant_id bigint, product_id text, status text, data jsonb, availability text,
          availability_detail text, clear_pending boolean, confirmed boolean, outcome text,
          http_status int, error text, set_validators boolean, etag text, last_modified text,
          content_sha256 bytea, counts_as_failure boolean, not_found_count int,
          changed_lane boolean, retry_at timestamptz, claimed_at timestamptz)
WHERE products.merchant_id = r.merchant_id AND products.product_id = r.product_id

-- finish_request --
-- Record on-demand attempts ($1: a JSON array of {id, outcome, http_status, error, retry_at}):
-- done, or queued again for a retry at retry_at. Only requests leased by $2.
UPDATE verification_requests SET
    state = CASE WHEN r.retry_at IS NULL THEN 'done' ELSE 'queued' END,
    attempts = attempts + 1,
    not_before = coalesce(r.retry_at, not_before),
    finished_at = CASE WHEN r.retry_at IS NULL THEN now() ELSE NULL END,
    outcome = r.outcome, http_status = r.http_status, error = r.error,
    lease_owner = NULL, lease_until = NULL
FROM json_to_recordset($1::json)
    AS r (id uuid, outcome text, http_status int, error text, retry_at timestamptz)
WHERE verification_requests.id = r.id AND verification_requests.lease_owner = $2

-- insert_changes --
-- Append rows to the sync log ($1: a JSON array of one object per change). JSON reads a null
-- value as SQL NULL: old and new values store it as the jsonb null, like any other value.
INSERT INTO changes (merchant_id, product_id, sweep_id, verification_id, cause, field, old_value, new_value)
SELECT c.merchant_id, c.product_id, c.sweep_id, c.verification_id, c.cause, c.field,
       coalesce(c.old_value, 'null'), coalesce(c.new_value, 'null')
FROM json_to_recordset($1::json)
    AS c (merchant_id bigint, product_id text, sweep_id uuid, verification_id uuid, cause text,
          field text, old_value jsonb, new_value jsonb)

-- lane_backlog --
-- Work waiting in the database, for the lane-due gauges.
SELECT
    (SELECT count(*) FROM verification_requests WHERE state <> 'done') AS on_demand,
    (SELECT count(*) FROM products WHERE changed_due_at IS NOT NULL) AS changed
