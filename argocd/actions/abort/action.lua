-- Abort: send all traffic back to the stable revision and scale the new one
-- down. The Release turns Degraded (reason Aborted) until a retry or a new
-- template.
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
obj.status.control.abort = true
return obj
