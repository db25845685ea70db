-- A generation's updated_at as a change stamps it: never before the stamp it already has. now() is
-- when the writing transaction began, and a transaction that began before another committed can
-- write after it: a claim that began a millisecond before the row was inserted stamped an
-- updated_at earlier than created_at, and a stamp that goes back breaks the event streams, whose
-- ids and ?since= are updated_at values. One microsecond past the last stamp keeps it moving.
CREATE FUNCTION generation_stamp(previous timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT greatest(now(), previous + interval '1 microsecond') $$;
