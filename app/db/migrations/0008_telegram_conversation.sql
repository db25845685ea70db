-- Telegram, part 2: each delivery speaks its user's language.
ALTER TABLE telegram_deliveries ADD COLUMN lang text NOT NULL DEFAULT 'en';
