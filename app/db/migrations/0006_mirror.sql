-- Result mirroring: every succeeded generation's results are copied into our own storage.
-- The generation's state never depends on it; these columns say how far the copy is.
--   mirror_state: pending (not copied yet, or not finished), done (files recorded, or nothing
--   to copy), failed (a source that is gone or too large), disabled (storage is turned off).
-- A copy is claimed with a lease (mirror_claim + mirror_lease_until) so the service's worker and
-- `python -m app mirror` never copy the same generation at once, and a dead copier's claim ends.

ALTER TABLE generations
    ADD COLUMN mirror_state text NOT NULL DEFAULT 'pending'
        CHECK (mirror_state IN ('pending', 'done', 'failed', 'disabled')),
    ADD COLUMN mirror_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN mirror_last_error text,
    ADD COLUMN mirror_next_at timestamptz,
    ADD COLUMN mirror_claim text,
    ADD COLUMN mirror_lease_until timestamptz;

-- What the mirror worker looks for: succeeded generations whose files are not copied yet.
CREATE INDEX generations_mirror_due ON generations (mirror_next_at)
    WHERE state = 'succeeded' AND mirror_state = 'pending';

-- Files people uploaded (inputs for image-to-video and edits), served by the same signed links.
CREATE TABLE uploads (
    id           uuid PRIMARY KEY,
    owner        text NOT NULL,
    name         text NOT NULL,
    content_type text NOT NULL,
    bytes        bigint NOT NULL,
    sha256       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX uploads_owner_created ON uploads (owner, created_at DESC);
