-- Sweeps ("massive product synchronization"): one row per run with its keyset cursor, counters
-- and lease; merchants' schedule overrides; the sync log of a sweep.

-- sweep_count_products --
-- The size of a merchant's catalog (a sweep's total).
SELECT count(*) FROM products WHERE merchant_id = $1

-- sweep_count_after --
-- Products of a merchant after a keyset cursor ('' = all): what a resumed sweep has left.
SELECT count(*) FROM products WHERE merchant_id = $1 AND product_id > $2

-- sweep_start --
-- Start a sweep unless one is active (unique index) or, with $10, one began or finished since.
INSERT INTO sweeps (id, merchant_id, state, trigger, windowed, total, window_end, eta_seconds,
                    warning, started_at, updated_at)
SELECT $1, $2, 'running', $3, $4, $5, $6, $7, $8, $9, $9
WHERE $10::timestamptz IS NULL OR NOT EXISTS (
    SELECT 1 FROM sweeps
    WHERE merchant_id = $2 AND (started_at >= $10 OR finished_at >= $10)
)
ON CONFLICT (merchant_id) WHERE state IN ('running', 'paused', 'waiting_window', 'halted')
DO NOTHING
RETURNING *

-- sweep_current --
-- The merchant's active sweep (running, paused, waiting for its window or halted), if any.
SELECT * FROM sweeps
WHERE merchant_id = $1 AND state IN ('running', 'paused', 'waiting_window', 'halted')

-- sweep_get --
-- One sweep of a merchant.
SELECT * FROM sweeps WHERE merchant_id = $1 AND id = $2

-- sweep_latest --
-- The merchant's most recent sweep.
SELECT * FROM sweeps WHERE merchant_id = $1 ORDER BY started_at DESC, id DESC LIMIT 1

-- sweep_list --
-- A merchant's sweeps, newest first, after the keyset position ($2, $3) when given.
SELECT * FROM sweeps
WHERE merchant_id = $1 AND ($2::timestamptz IS NULL OR (started_at, id) < ($2, $3::uuid))
ORDER BY started_at DESC, id DESC
LIMIT $4

-- sweep_transition --
-- A manual action: move the active sweep from one of the states $2 to $3 (at $4).
-- A manual resume runs until done, whatever the schedule's window.
UPDATE sweeps SET
    state = $3,
    windowed = CASE WHEN $3 = 'running' THEN false ELSE windowed END,
    window_end = CASE WHEN $3 = 'running' THEN NULL ELSE window_end END,
    halted_reason = CASE WHEN $3 = 'running' THEN NULL ELSE halted_reason END,
    finished_at = CASE WHEN $3 IN ('done', 'cancelled') THEN $4 ELSE finished_at END,
    eta_seconds = CASE WHEN $3 IN ('done', 'cancelled') THEN NULL ELSE eta_seconds END,
    updated_at = now()
WHERE merchant_id = $1 AND state = ANY($2::text[])
RETURNING *

-- sweep_merchants --
-- Every merchant with its schedule override, last sweep start and active sweep (the runner's poll).
SELECT m.id, m.slug, m.hosts, m.currency, m.sweep_override,
       (SELECT max(started_at) FROM sweeps l WHERE l.merchant_id = m.id) AS last_started_at,
       a.id AS sweep_id, a.state, a.windowed, a.started_at, a.halted_at, a.lease_owner,
       (a.lease_owner IS NULL OR a.lease_until < now()) AS lease_free
FROM merchants m
LEFT JOIN sweeps a
    ON a.merchant_id = m.id AND a.state IN ('running', 'paused', 'waiting_window', 'halted')
ORDER BY m.id

-- sweep_claim --
-- Take the lease of a running sweep nobody holds (or whose holder stopped renewing it).
UPDATE sweeps SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
WHERE id = $1 AND state = 'running'
  AND (lease_owner IS NULL OR lease_owner = $2 OR lease_until < now())
RETURNING *

-- sweep_take_over --
-- Take the lease of a running sweep from a daemon known to be dead ($3, its owner id).
UPDATE sweeps SET lease_owner = $2, lease_until = now() + make_interval(secs => $4)
WHERE id = $1 AND state = 'running' AND lease_owner = $3
RETURNING *

-- sweep_resume_window --
-- The schedule resumes a sweep (waiting for its window, or halted) in the window ending at $3.
UPDATE sweeps SET state = 'running', window_end = $3, halted_reason = NULL, updated_at = now()
WHERE id = $1 AND state = ANY($2::text[])
RETURNING *

-- sweep_checkpoint --
-- Save the cursor and counters of the finished prefix, renew the lease; returns the state.
UPDATE sweeps SET
    cursor = $3, checked = $4, changed = $5, discontinued = $6, errors = $7, suspect = $8,
    total = $9, eta_seconds = $10, warning = $11, rate_per_s = $12, window_end = $13,
    lease_until = now() + make_interval(secs => $14), updated_at = now()
WHERE id = $1 AND lease_owner = $2
RETURNING state

-- sweep_release --
-- A driver's last checkpoint: save progress, give up the lease, and move a still running sweep
-- to $14 ('running' leaves it for the next daemon to claim) at $16.
UPDATE sweeps SET
    cursor = $3, checked = $4, changed = $5, discontinued = $6, errors = $7, suspect = $8,
    total = $9, rate_per_s = $12, window_end = $13,
    eta_seconds = CASE WHEN state = 'running' AND $14 = 'done' THEN NULL ELSE $10::float8 END,
    warning = CASE WHEN state = 'running' AND $14 = 'done' THEN NULL ELSE $11::text END,
    state = CASE WHEN state = 'running' THEN $14 ELSE state END,
    halted_reason = CASE WHEN state = 'running' AND $14 = 'halted' THEN $15::text
                         ELSE halted_reason END,
    halted_at = CASE WHEN state = 'running' AND $14 = 'halted' THEN $16::timestamptz
                     ELSE halted_at END,
    finished_at = CASE WHEN state = 'running' AND $14 = 'done' THEN $16::timestamptz
                       ELSE finished_at END,
    lease_owner = NULL, lease_until = NULL, updated_at = now()
WHERE id = $1 AND lease_owner = $2
RETURNING *

-- sweep_products_after --
-- The next products of a sweep in primary-key order after the keyset cursor ('' = the start).
SELECT merchant_id, product_id, url, status, availability, data, pending, etag, last_modified,
       content_sha256, not_found_count
FROM products
WHERE merchant_id = $1 AND product_id > $2
ORDER BY product_id
LIMIT $3

-- sweep_changes --
-- The sync log of one sweep after change id $2, oldest first.
SELECT id, product_id, field, old_value, new_value, at
FROM changes
WHERE sweep_id = $1 AND id > $2
ORDER BY id
LIMIT $3

-- sweep_override_get --
-- A merchant's own sweep schedule (PATCH /v1/sweep-schedule), or null.
SELECT sweep_override FROM merchants WHERE id = $1

-- sweep_override_set --
-- Replace a merchant's own sweep schedule (null clears it).
UPDATE merchants SET sweep_override = $2 WHERE id = $1 RETURNING sweep_override

-- status_products --
-- Products by merchant, status and availability (catalog-verifier status).
SELECT m.slug, p.status, p.availability, count(*) AS products
FROM products p JOIN merchants m ON m.id = p.merchant_id
GROUP BY m.slug, p.status, p.availability
ORDER BY m.slug, p.status, p.availability

-- status_sweeps --
-- Active sweeps of every merchant (catalog-verifier status).
SELECT m.slug, s.*
FROM sweeps s JOIN merchants m ON m.id = s.merchant_id
WHERE s.state IN ('running', 'paused', 'waiting_window', 'halted')
ORDER BY m.slug
