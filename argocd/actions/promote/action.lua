-- Promote: a canary finishes its current step now (a `pause: {}` step waits for
-- this); a blue-green Release whose preview is ready and checked switches to it
-- now. Asked while spec.paused, it applies once the Release is resumed.
--
-- Written to status.control, which serin reads and then clears. Argo CD sends
-- a change under .status to the status subresource (Argo CD >= 1.8), so the
-- spec, and Git, are untouched. Argo CD runs this without Lua's standard
-- libraries: base and table only.
if obj.status == nil then
  obj.status = {}
end
if obj.status.control == nil then
  obj.status.control = {}
end
obj.status.control.promote = true
return obj
