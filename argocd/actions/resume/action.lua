-- Resume: let a paused rollout go on (spec.paused = false). A promotion asked
-- for while paused applies now.
--
-- This edits the spec: if Git sets spec.paused, the Release shows OutOfSync
-- and a sync (or self-heal) puts Git's value back. Argo CD runs this without
-- Lua's standard libraries: base and table only.
obj.spec.paused = false
return obj
