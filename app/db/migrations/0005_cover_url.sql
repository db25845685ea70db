-- A cover image or thumbnail KIE makes beside the result (Suno's track art, Runway's and Aleph's
-- video thumbnails). It is never one of the results, so it lives apart from result_urls.

ALTER TABLE generations ADD COLUMN cover_url text;
