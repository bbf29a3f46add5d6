-- Hub schema, version 11 (issue 15): raw events pruned after analysis, when the operator asks
-- (`edetail hub prune-events`, `edetail hub serve --prune-events-after-days`). A device's pruned
-- events are a prefix of its sequence: every stored event with seq <= pruned_through_seq was
-- analysed (or belonged to no call), recorded before the operator's cutoff, and deleted. A
-- re-sent event at or below it is acknowledged as a duplicate and never stored again.
ALTER TABLE devices ADD COLUMN pruned_through_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN events_pruned INTEGER NOT NULL DEFAULT 0;
