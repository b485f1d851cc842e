-- The merchant API's view of products: read, list, trusted upserts and discontinuation.

-- catalog_get_product --
-- One product of one merchant, with every column the response needs.
SELECT product_id, status, source, url, availability, availability_detail, data, pending,
       pending_at, first_seen_at, updated_at, verified_at, last_checked_at, last_outcome,
       last_http_status, last_error
FROM products
WHERE merchant_id = $1 AND product_id = $2;

-- catalog_list_products --
-- One page of a merchant's products after a keyset cursor, filtered ($2 status, $3
-- availability, $4 usable; null = any), in product_id order.
SELECT product_id, status, source, url, availability, availability_detail, data, pending,
       pending_at, first_seen_at, updated_at, verified_at, last_checked_at, last_outcome,
       last_http_status, last_error
FROM products
WHERE merchant_id = $1
  AND ($2::text IS NULL OR status = $2::text)
  AND ($3::text IS NULL OR availability = $3::text)
  AND ($4::boolean IS NULL
       OR (status = 'verified' AND availability IS NOT DISTINCT FROM 'in_stock') = $4::boolean)
  AND ($5::text IS NULL OR product_id > $5::text)
ORDER BY product_id
LIMIT $6;

-- catalog_upsert_products --
-- Store products sent by the merchant's backend (trusted: verified, source api). A row whose
-- stored state already equals the new one is not written at all, so a repeated import changes
-- nothing; otherwise the newer trusted data replaces the old and drops the older tag
-- observation. Returns the written rows: created (new) or updated.
INSERT INTO products AS p
    (merchant_id, product_id, status, source, url, availability, availability_detail, data,
     verified_at)
SELECT $1, i.product_id, 'verified', 'api', i.url, i.availability, i.availability_detail,
       i.data, now()
FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::jsonb[])
    AS i (product_id, url, availability, availability_detail, data)
ON CONFLICT (merchant_id, product_id) DO UPDATE SET
    status = 'verified',
    source = 'api',
    url = excluded.url,
    availability = excluded.availability,
    availability_detail = excluded.availability_detail,
    data = excluded.data,
    pending = NULL,
    pending_at = NULL,
    not_found_count = 0,
    -- the digest of the last verified page no longer describes the row
    content_sha256 = NULL,
    updated_at = now(),
    verified_at = now()
WHERE (p.status, p.source, p.url, p.availability, p.availability_detail, p.data, p.pending)
    IS DISTINCT FROM ('verified', 'api', excluded.url, excluded.availability,
                      excluded.availability_detail, excluded.data, NULL::jsonb)
RETURNING p.product_id, (p.xmax = 0) AS created;

-- catalog_discontinue_product --
-- The merchant's backend says a product is gone: verified as discontinued (the row stays).
UPDATE products
SET status = 'verified',
    source = 'api',
    availability = 'discontinued',
    availability_detail = 'discontinued',
    data = data || '{"availability": "discontinued", "availability_detail": "discontinued"}',
    content_sha256 = NULL,
    updated_at = now(),
    verified_at = now()
WHERE merchant_id = $1 AND product_id = $2
RETURNING product_id, status, source, url, availability, availability_detail, data, pending,
          pending_at, first_seen_at, updated_at, verified_at, last_checked_at, last_outcome,
          last_http_status, last_error;
