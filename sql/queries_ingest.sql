-- The public ingest path: tag events from browsers and shop backends.

-- ingest_merchant_by_token --
-- The merchant an ingest token belongs to (cached in memory by the ingest listener).
SELECT id, hosts, currency
FROM merchants
WHERE ingest_token = $1;

-- ingest_upsert_tag_products --
-- Store one group commit of tag observations (one row per product, no duplicate keys).
-- New products are stored unverified and queued in the `changed` lane. An unverified product
-- takes the latest tag data. A verified product keeps its data: the tag data becomes `pending`,
-- and a difference in name, price or availability queues it (coalesce: at most once). The
-- price comparison is numeric when both sides are plain decimals, textual otherwise. Only a
-- new observation (different from `pending`) updates or queues anything, so a product whose
-- tag keeps disagreeing with its page is re-verified once per change, not once per visit.
INSERT INTO products AS p
    (merchant_id, product_id, status, source, url, data, pending, pending_at, changed_due_at)
SELECT t.merchant_id, t.product_id, 'unverified', 'tag', t.url, t.data, t.data, now(), now()
FROM (
    -- JSON arrives as text (cheaper to send than jsonb[]); OFFSET 0 parses it once per row.
    SELECT u.merchant_id, u.product_id, u.url, u.data::jsonb AS data
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])
        AS u (merchant_id, product_id, url, data)
    OFFSET 0
) AS t
ON CONFLICT (merchant_id, product_id) DO UPDATE SET
    data = CASE WHEN p.status = 'verified' THEN p.data ELSE excluded.data END,
    url = CASE WHEN p.status = 'verified' THEN p.url ELSE excluded.url END,
    pending = excluded.pending,
    pending_at = excluded.pending_at,
    updated_at = now(),
    changed_due_at = CASE
        WHEN p.changed_due_at IS NOT NULL THEN p.changed_due_at
        WHEN (excluded.data ->> 'name') IS DISTINCT FROM (p.data ->> 'name') THEN now()
        WHEN excluded.data ? 'availability'
            AND (excluded.data ->> 'availability') IS DISTINCT FROM
                (CASE WHEN p.status = 'verified' THEN p.availability
                      ELSE p.data ->> 'availability' END) THEN now()
        WHEN (p.data ->> 'unit_price') ~ '^[0-9]{1,30}(\.[0-9]{1,30})?$'
            AND (excluded.data ->> 'unit_price') ~ '^[0-9]{1,30}(\.[0-9]{1,30})?$'
            THEN CASE WHEN (p.data ->> 'unit_price')::numeric
                           <> (excluded.data ->> 'unit_price')::numeric THEN now() END
        WHEN (excluded.data ->> 'unit_price') IS DISTINCT FROM (p.data ->> 'unit_price')
            THEN now()
    END
-- A visit repeating the current observation carries no news: the row is left untouched.
WHERE p.pending IS DISTINCT FROM excluded.pending;

-- ingest_mark_not_found --
-- A tag reported these products missing: queue each known one in the `changed` lane (once).
UPDATE products
SET changed_due_at = coalesce(changed_due_at, now())
WHERE merchant_id = $1 AND product_id = ANY ($2::text[])
RETURNING product_id;
