-- The whole catalog-verifier schema, first version.
--
-- Layout choices (sized for 1,000,000+ products per merchant):
-- * products are keyed by (merchant_id, product_id); that primary key is also the sweep order,
--   so a sweep walks it with a keyset cursor and needs no extra index.
-- * the `changed` lane is a marker on the product row (changed_due_at) with a partial index, so
--   repeated tag visits never pile up work and a restart loses none of it.
-- * the `on_demand` lane is a small durable table (verification_requests) with leases.
-- * sweeps keep one row per run with a cursor and counters; no job row per product.

CREATE TABLE merchants (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name            text NOT NULL,
    hosts           text[] NOT NULL CHECK (cardinality(hosts) >= 1),
    currency        text NOT NULL DEFAULT 'EUR' CHECK (currency ~ '^[A-Z]{3}$'),
    ingest_token    text NOT NULL UNIQUE,
    -- PATCH /v1/sweep-schedule: a merchant's own schedule; wins over the config file until cleared.
    sweep_override  jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id          text PRIMARY KEY,
    merchant_id     bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    -- sha256 of the secret part; secrets are 256-bit random, so a fast hash is enough.
    secret_sha256   bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_used_at    timestamptz,
    revoked_at      timestamptz
);
CREATE INDEX api_keys_merchant ON api_keys (merchant_id);

CREATE TABLE products (
    merchant_id         bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    product_id          text NOT NULL CHECK (length(product_id) BETWEEN 1 AND 255),
    status              text NOT NULL DEFAULT 'unverified' CHECK (status IN ('unverified', 'verified')),
    -- where the current fields came from: tag (unverified), page (verified by fetching), api (trusted)
    source              text NOT NULL CHECK (source IN ('tag', 'page', 'api')),
    url                 text NOT NULL,
    availability        text CHECK (availability IN ('in_stock', 'out_of_stock', 'discontinued')),
    availability_detail text,
    -- the product object's fields (prices as decimal strings); the verified snapshot once verified
    data                jsonb NOT NULL,
    -- the latest tag data not yet verified, or null
    pending             jsonb,
    pending_at          timestamptz,
    first_seen_at       timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    verified_at         timestamptz,
    -- last verification attempt
    last_checked_at     timestamptz,
    last_outcome        text,
    last_http_status    integer,
    last_error          text,
    -- conditional requests and write skipping
    etag                text,
    last_modified       text,
    content_sha256      bytea,
    -- failure bookkeeping: consecutive failed attempts, and 404s seen (a sweep confirms one 404)
    failure_count       integer NOT NULL DEFAULT 0,
    not_found_count     integer NOT NULL DEFAULT 0,
    -- the `changed` lane: due marker and the lease of the daemon working on it
    changed_due_at      timestamptz,
    changed_attempts    integer NOT NULL DEFAULT 0,
    changed_lease_until timestamptz,
    changed_lease_owner text,
    PRIMARY KEY (merchant_id, product_id)
-- free space in every page lets the frequent bookkeeping updates (last_checked_at, outcome,
-- leases) stay heap-only (HOT): no index writes, dead tuples pruned in place
) WITH (fillfactor = 80);
-- per merchant, so the changed-lane claim can take a fair share from every merchant
CREATE INDEX products_changed_due ON products (merchant_id, changed_due_at)
    WHERE changed_due_at IS NOT NULL;
CREATE INDEX products_merchant_status ON products (merchant_id, status, availability, product_id);

CREATE TABLE verification_requests (
    id              uuid PRIMARY KEY,
    merchant_id     bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    product_id      text NOT NULL,
    state           text NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done')),
    requested_at    timestamptz NOT NULL DEFAULT now(),
    not_before      timestamptz NOT NULL DEFAULT now(),
    attempts        integer NOT NULL DEFAULT 0,
    lease_owner     text,
    lease_until     timestamptz,
    started_at      timestamptz,
    finished_at     timestamptz,
    outcome         text,
    http_status     integer,
    error           text,
    FOREIGN KEY (merchant_id, product_id) REFERENCES products (merchant_id, product_id) ON DELETE CASCADE
);
-- At most one open request per product: repeated "verify now" calls share it.
CREATE UNIQUE INDEX verification_requests_open ON verification_requests (merchant_id, product_id)
    WHERE state <> 'done';
CREATE INDEX verification_requests_claim ON verification_requests (not_before)
    WHERE state <> 'done';
CREATE INDEX verification_requests_finished ON verification_requests (finished_at)
    WHERE state = 'done';

CREATE TABLE sweeps (
    id              uuid PRIMARY KEY,
    merchant_id     bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    state           text NOT NULL CHECK (state IN ('running', 'paused', 'waiting_window', 'done', 'cancelled', 'halted')),
    trigger         text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    -- keyset cursor: every product_id <= cursor has been handed to the sweep lane and finished
    cursor          text,
    total           bigint NOT NULL DEFAULT 0,
    checked         bigint NOT NULL DEFAULT 0,
    changed         bigint NOT NULL DEFAULT 0,
    discontinued    bigint NOT NULL DEFAULT 0,
    errors          bigint NOT NULL DEFAULT 0,
    -- circuit breaker sample: would-be discontinuations and failures not applied yet
    suspect         bigint NOT NULL DEFAULT 0,
    eta_seconds     double precision,
    warning         text,
    halted_reason   text,
    window_end      timestamptz,
    lease_owner     text,
    lease_until     timestamptz,
    started_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz
);
-- One sweep per merchant at a time, enforced by the database.
CREATE UNIQUE INDEX sweeps_one_active ON sweeps (merchant_id)
    WHERE state IN ('running', 'paused', 'waiting_window', 'halted');
CREATE INDEX sweeps_merchant_started ON sweeps (merchant_id, started_at DESC);

-- The sync log: what changed, old and new values.
CREATE TABLE changes (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    merchant_id     bigint NOT NULL REFERENCES merchants (id) ON DELETE CASCADE,
    product_id      text NOT NULL,
    sweep_id        uuid REFERENCES sweeps (id) ON DELETE SET NULL,
    verification_id uuid,
    at              timestamptz NOT NULL DEFAULT now(),
    cause           text NOT NULL,
    field           text NOT NULL,
    old_value       jsonb,
    new_value       jsonb
);
CREATE INDEX changes_sweep ON changes (sweep_id, id) WHERE sweep_id IS NOT NULL;
CREATE INDEX changes_product ON changes (merchant_id, product_id, id);
