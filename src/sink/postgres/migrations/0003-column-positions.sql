-- Columns whose stored value an older change set than the row's (unchanged TOAST): column → that position.
ALTER TABLE trustsync.key_positions ADD COLUMN IF NOT EXISTS column_positions jsonb;
