-- A hostile edge-case corpus: types, names and shapes that break naive copiers.
CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN public.posint AS integer CONSTRAINT posint_check CHECK (VALUE > 0);
CREATE TYPE public.pair AS (a integer, b text);
CREATE TYPE public.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
CREATE SCHEMA "Sales Dept";
CREATE SCHEMA archive;
CREATE SEQUENCE public.shared_seq START 1000;

CREATE TABLE public.kitchen_sink (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    serial_col  serial,
    shared      bigint DEFAULT nextval('public.shared_seq'),
    "select"    text,
    "Mixed Case" text COLLATE "C",
    "quo""te"   text,
    m           public.mood NOT NULL DEFAULT 'ok',
    moods       public.mood[],
    p           public.pair,
    n           public.posint,
    fr          public.floatrange,
    ir          int4range,
    tsr         tstzrange,
    num         numeric,
    num_fixed   numeric(12, 4),
    f8          double precision,
    f4          real,
    b           bytea,
    j           json,
    jb          jsonb,
    ts          timestamp,
    tstz        timestamptz,
    d           date,
    iv          interval,
    arr2d       integer[],
    txtarr      text[],
    u           uuid,
    ip          inet,
    mac         macaddr,
    bits        bit varying(16),
    money_col   money,
    pt          point,
    tsv         tsvector,
    rc          regclass,
    big_total   numeric GENERATED ALWAYS AS (num_fixed * 2) STORED,
    CONSTRAINT sink_num_check CHECK (num_fixed IS NULL OR num_fixed > -1000000),
    CONSTRAINT sink_select_uq UNIQUE ("select")
);
COMMENT ON TABLE public.kitchen_sink IS 'every type we could think of';
COMMENT ON COLUMN public.kitchen_sink."Mixed Case" IS 'a column comment';
CREATE INDEX sink_partial_idx ON public.kitchen_sink (num) WHERE num > 0;
CREATE INDEX sink_expr_idx ON public.kitchen_sink (lower("Mixed Case"));
CREATE INDEX sink_jb_idx ON public.kitchen_sink USING gin (jb);
COMMENT ON INDEX public.sink_expr_idx IS 'an index comment';

INSERT INTO public.kitchen_sink ("select", "Mixed Case", "quo""te", m, moods, p, n, fr, ir, tsr,
    num, num_fixed, f8, f4, b, j, jb, ts, tstz, d, iv, arr2d, txtarr, u, ip, mac, bits,
    money_col, pt, tsv, rc)
SELECT 'row ' || g,
       CASE WHEN g % 7 = 0 THEN NULL ELSE 'Ünïcødé ✓ ' || g END,
       'it''s "quoted", with, commas ' || g,
       (ARRAY['sad', 'ok', 'happy'])[1 + g % 3]::public.mood,
       ARRAY['sad', 'happy']::public.mood[],
       ROW(g, 'p' || g)::public.pair,
       1 + g,
       public.floatrange(g, g + 0.5),
       int4range(g, g + 10),
       tstzrange('2024-01-01'::timestamptz, '2024-01-01'::timestamptz + g * interval '1 day'),
       CASE WHEN g % 10 = 0 THEN 'NaN'::numeric WHEN g % 10 = 1 THEN 'Infinity'::numeric
            ELSE g / 3.0 END,
       g / 7.0,
       CASE WHEN g % 9 = 0 THEN 'NaN'::float8 WHEN g % 9 = 1 THEN '-Infinity'::float8
            ELSE g * 1.0e-3 + 1.0 / 3 END,
       g / 3.0,
       decode(md5(g::text), 'hex') || '\x00ff'::bytea,
       json_build_object('g', g, 'nested', json_build_array(1, 'two', null)),
       jsonb_build_object('g', g, 'emoji', '🦆', 'nul', null),
       CASE WHEN g % 11 = 0 THEN 'infinity'::timestamp WHEN g % 11 = 1 THEN '-infinity'::timestamp
            ELSE '2024-02-29 12:34:56.789012'::timestamp + g * interval '1 minute' END,
       CASE WHEN g % 13 = 0 THEN 'infinity'::timestamptz
            ELSE '1999-12-31 23:59:59+05'::timestamptz + g * interval '1 second' END,
       CASE WHEN g % 17 = 0 THEN 'infinity'::date ELSE '0044-03-15 BC'::date + g END,
       make_interval(years => g % 3, days => g, secs => g / 10.0),
       ARRAY[[g, g + 1], [g + 2, g + 3]],
       ARRAY['a', NULL, 'c,d', '"e"'],
       md5(g::text)::uuid,
       ('10.0.' || g % 256 || '.1/24')::inet,
       '08:00:2b:01:02:03'::macaddr,
       B'1011'::bit varying,
       g * 1.25,
       point(g, -g),
       to_tsvector('simple', 'the quick brown fox ' || g),
       'pg_class'::regclass
FROM generate_series(1, 500) AS g;
INSERT INTO public.kitchen_sink ("select") VALUES ('all nulls');

CREATE TABLE "Sales Dept"."Order Items" (
    "Order ID" integer NOT NULL,
    "Line #"   smallint NOT NULL,
    sku        text,
    qty        public.posint,
    PRIMARY KEY ("Order ID", "Line #")
);
INSERT INTO "Sales Dept"."Order Items" SELECT g / 3, g % 3, 'SKU-' || g, 1 + g % 5
FROM generate_series(3, 3000) AS g;

CREATE TABLE public."ünïcode_tåble" (k text PRIMARY KEY, v text);
INSERT INTO public."ünïcode_tåble" VALUES ('ключ', 'значение'), ('鍵', '値'), ('', 'empty key');

CREATE TABLE archive.measurements (
    id        bigint NOT NULL,
    region    text NOT NULL,
    taken_at  timestamptz NOT NULL,
    reading   double precision,
    PRIMARY KEY (id, region, taken_at)
) PARTITION BY LIST (region);
CREATE TABLE archive.measurements_eu PARTITION OF archive.measurements FOR VALUES IN ('eu')
    PARTITION BY RANGE (taken_at);
CREATE TABLE archive.measurements_eu_2024 PARTITION OF archive.measurements_eu
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE archive.measurements_eu_rest PARTITION OF archive.measurements_eu DEFAULT;
CREATE TABLE archive.measurements_us PARTITION OF archive.measurements FOR VALUES IN ('us');
CREATE TABLE archive.measurements_other PARTITION OF archive.measurements DEFAULT;
CREATE INDEX measurements_reading_idx ON archive.measurements (reading);
INSERT INTO archive.measurements
SELECT g, (ARRAY['eu', 'us', 'apac'])[1 + g % 3],
       '2023-06-01'::timestamptz + g * interval '3 hours', g * 0.5
FROM generate_series(1, 6000) AS g;

CREATE TABLE public.parent_accounts (id integer PRIMARY KEY, name text NOT NULL);
CREATE TABLE public.child_payments (
    id integer PRIMARY KEY,
    account_id integer NOT NULL REFERENCES public.parent_accounts (id),
    amount numeric(10, 2),
    during tstzrange,
    CONSTRAINT no_overlap EXCLUDE USING gist (during WITH &&)
);
INSERT INTO public.parent_accounts SELECT g, 'acct ' || g FROM generate_series(1, 200) AS g;
INSERT INTO public.child_payments
SELECT g, 1 + g % 200, g * 1.5,
       tstzrange('2024-01-01'::timestamptz + g * interval '1 day',
                 '2024-01-01'::timestamptz + (g + 1) * interval '1 day')
FROM generate_series(1, 1000) AS g;

CREATE TABLE public.only_generated (g integer GENERATED ALWAYS AS (42) STORED);
INSERT INTO public.only_generated SELECT FROM generate_series(1, 5);
CREATE TABLE public.no_columns ();
INSERT INTO public.no_columns SELECT FROM generate_series(1, 3);
CREATE TABLE public.empty_table (id integer PRIMARY KEY, note text);
CREATE UNLOGGED TABLE public.scratch (id integer, payload text) WITH (fillfactor = 70);
INSERT INTO public.scratch SELECT g, repeat('x', g) FROM generate_series(1, 100) AS g;
CREATE TABLE public.wide_text (id integer PRIMARY KEY, big text);
INSERT INTO public.wide_text VALUES (1, repeat('0123456789', 200000));

-- Circular foreign keys with referential actions (a store has a manager; staff work in a store),
-- a gist index on tsvector, and a trigger on the source (triggers are not copied).
CREATE TABLE public.store (store_id integer PRIMARY KEY, manager_staff_id integer NOT NULL);
CREATE TABLE public.staff (
    staff_id integer PRIMARY KEY,
    store_id integer NOT NULL REFERENCES public.store ON UPDATE CASCADE ON DELETE RESTRICT,
    bio tsvector
);
ALTER TABLE public.store ADD CONSTRAINT store_manager_fkey FOREIGN KEY (manager_staff_id)
    REFERENCES public.staff (staff_id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX staff_bio_idx ON public.staff USING gist (bio);
CREATE FUNCTION public.touch() RETURNS trigger LANGUAGE plpgsql AS
    $$ BEGIN NEW.bio := to_tsvector('simple', 'touched'); RETURN NEW; END $$;
CREATE TRIGGER staff_touch BEFORE INSERT OR UPDATE ON public.staff
    FOR EACH ROW EXECUTE FUNCTION public.touch();
BEGIN;
INSERT INTO public.store SELECT g, g FROM generate_series(1, 20) AS g;
INSERT INTO public.staff SELECT g, 1 + g % 20, NULL FROM generate_series(1, 40) AS g;
COMMIT;
