-- Merchants (tenants) and their API keys.

-- insert_merchant --
-- Create a merchant; returns nothing when the slug is taken (ON CONFLICT).
INSERT INTO merchants (slug, name, hosts, currency, ingest_token)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (slug) DO NOTHING
RETURNING id, slug, name, hosts, currency, ingest_token, created_at;

-- list_merchants --
-- Every merchant, by slug.
SELECT id, slug, name, hosts, currency, ingest_token, created_at
FROM merchants
ORDER BY slug;

-- get_merchant_by_slug --
-- One merchant by slug.
SELECT id, slug, name, hosts, currency, ingest_token, created_at
FROM merchants
WHERE slug = $1;

-- get_merchant_by_id --
-- One merchant by its internal id.
SELECT id, slug, name, hosts, currency, ingest_token, created_at
FROM merchants
WHERE id = $1;

-- insert_api_key --
-- Store a new key: only the sha256 of its secret.
INSERT INTO api_keys (key_id, merchant_id, secret_sha256)
VALUES ($1, $2, $3)
RETURNING key_id, created_at;

-- list_api_keys --
-- A merchant's keys, newest first (no secrets: the table holds none).
SELECT k.key_id, m.slug, k.created_at, k.last_used_at, k.revoked_at
FROM api_keys k
JOIN merchants m ON m.id = k.merchant_id
WHERE k.merchant_id = $1
ORDER BY k.created_at DESC, k.key_id;

-- revoke_api_key --
-- Revoke a key (idempotent: an earlier revocation time is kept).
UPDATE api_keys k
SET revoked_at = coalesce(k.revoked_at, now())
FROM merchants m
WHERE k.key_id = $1 AND m.id = k.merchant_id
RETURNING k.key_id, m.slug, k.created_at, k.last_used_at, k.revoked_at;

-- get_api_key_for_auth --
-- The live key with this id, its secret hash and its merchant; nothing when revoked or unknown.
SELECT k.secret_sha256, k.last_used_at,
       m.id, m.slug, m.name, m.hosts, m.currency, m.ingest_token, m.created_at
FROM api_keys k
JOIN merchants m ON m.id = k.merchant_id
WHERE k.key_id = $1 AND k.revoked_at IS NULL;

-- touch_api_key --
-- Record that a key was used, at most once a minute per key (keeps auth mostly read-only).
UPDATE api_keys
SET last_used_at = now()
WHERE key_id = $1
  AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute');
