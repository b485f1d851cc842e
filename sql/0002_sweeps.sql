-- Sweeps: which runs follow the schedule's windows, and progress details.
--
-- * windowed: a sweep started by the schedule pauses when its window closes (waiting_window);
--   a manual start or a manual resume runs until done whatever the window.
-- * rate_per_s: the measured rate (products checked per second) at the last checkpoint.
-- * halted_at: when the circuit breaker stopped the sweep; the next window opening after it
--   retries the sweep.
ALTER TABLE sweeps ADD COLUMN windowed boolean NOT NULL DEFAULT false;
ALTER TABLE sweeps ADD COLUMN rate_per_s double precision;
ALTER TABLE sweeps ADD COLUMN halted_at timestamptz;
