-- Fixed-window counters for public endpoints (e.g. "talk to sales"), keyed by a bucket and a
-- subject such as a hashed client IP. Not tenant-owned: the callers precede any tenant, which
-- is why nigredo_leads.rate_limits (tenant-scoped, RLS) cannot hold them.
CREATE TABLE public.public_rate_limits (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    bucket        text NOT NULL CHECK (bucket ~ '^[a-z0-9_:-]+$'),
    subject       text NOT NULL CHECK (length(subject) BETWEEN 1 AND 128),
    window_start  timestamptz NOT NULL,
    window_s      integer NOT NULL CHECK (window_s > 0),
    count         integer NOT NULL DEFAULT 0 CHECK (count >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (bucket, subject, window_start)
);
CREATE INDEX public_rate_limits_window_idx ON public.public_rate_limits (window_start);
SELECT public.attach_updated_at('public.public_rate_limits');
