-- Pause: freeze the rollout where it stands (spec.paused = true).
--
-- This edits the spec: if Git sets spec.paused, the Release shows OutOfSync
-- and a sync (or self-heal) puts Git's value back. Argo CD runs this without
-- Lua's standard libraries: base and table only.
obj.spec.paused = true
return obj
