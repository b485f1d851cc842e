-- The public ingest path: tag events from browsers and shop backends.

-- ingest_merchant_by_token --
-- The merchant an ingest token belongs to (cached in memory by the ingest listener).
SELECT id, hosts, currency
FROM merchants
WHERE ingest_token = $1;

-- ingest_upsert_tag_products --
-- Store one group commit of tag observations: $1 the merchant of each request, $2 its canonical
-- products as JSON lines. The last line of each product wins; rows are written in key order
-- (a stable lock order). New products are stored unverified and queued in the `changed` lane.
-- An unverified product takes the latest tag data. A verified product keeps its data: the tag
-- data becomes `pending`, and a difference in name, price or availability queues it (coalesce:
-- at most once). The price comparison is numeric when both sides are plain decimals, textual
-- otherwise. Only a new observation (different from `pending`) updates or queues anything, so a
-- product whose tag keeps disagreeing with its page is re-verified once per change, not once
-- per visit.
INSERT INTO products AS p
    (merchant_id, product_id, status, source, url, data, pending, pending_at, changed_due_at)
SELECT DISTINCT ON (t.merchant_id, (t.data ->> 'product_id') COLLATE "C")
    t.merchant_id, t.data ->> 'product_id', 'unverified', 'tag', t.data ->> 'url', t.data, t.data,
    now(), now()
FROM (
    -- OFFSET 0: each line is parsed once, not once per reference.
    SELECT e.merchant_id, l.json::jsonb AS data, e.request, l.line
    FROM unnest($1::bigint[], $2::text[]) WITH ORDINALITY AS e (merchant_id, lines, request)
        CROSS JOIN LATERAL string_to_table(e.lines, E'\n') WITH ORDINALITY AS l (json, line)
    OFFSET 0
) AS t
ORDER BY t.merchant_id, (t.data ->> 'product_id') COLLATE "C", t.request DESC, t.line DESC
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
