-- Promote Full: a canary skips its remaining steps and becomes stable; a
-- blue-green Release switches as soon as its preview is ready, skipping the
-- pre-promotion analysis. Asked while spec.paused, it applies once resumed.
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
obj.status.control.promoteFull = true
return obj
