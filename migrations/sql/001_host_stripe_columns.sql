-- +goose Up
-- The host tables belong to LodgeTix; we only add the columns that hold the
-- Stripe ids, and keep any ids the old system already wrote.
ALTER TABLE events ADD COLUMN IF NOT EXISTS stripe_product_id text;
ALTER TABLE event_tickets ADD COLUMN IF NOT EXISTS stripe_price_id text;

-- +goose Down
-- Host columns are never dropped: they may hold ids from before this project.
SELECT 1;
