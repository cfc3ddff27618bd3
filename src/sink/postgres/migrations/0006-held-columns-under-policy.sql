-- Under policy, the columns the newest applied change of a record left unchanged (TOAST), each with
-- the position of the change that set the value held: an older change carrying a newer value fills it.
ALTER TABLE trustsync.row_state ADD COLUMN IF NOT EXISTS column_positions jsonb;
