-- Which serin actions make sense for this Release now. Argo CD lists all six
-- and greys out the disabled ones. It does not consult this script when an
-- action is run, so the CLI can still run a disabled one; serin ignores a
-- request that does not apply (and consumes it).
--
-- Argo CD runs this without Lua's standard libraries: base and table only.
local actions = {}
local spec = obj.spec or {}
local status = obj.status or {}
local strategy = spec.strategy or {}

local function condition(kind)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local paused = spec.paused == true
local phase = status.phase
local moving = phase == "Progressing" or phase == "Paused"
local progressing = condition("Progressing")
local degraded = condition("Degraded")
local failed = (degraded ~= nil and degraded.status == "True") or phase == "Degraded"
local invalid = degraded ~= nil and degraded.status == "True" and degraded.reason == "InvalidSpec"
-- An inconclusive analysis holds the rollout until a retry (or a new template).
local inconclusive = phase == "Paused" and progressing ~= nil and progressing.reason == "InconclusiveAnalysis"
-- A new revision is on its way from a stable one: something to abort.
local inFlight = status.stableRevision ~= nil and status.currentRevision ~= nil
  and status.stableRevision ~= status.currentRevision
-- Only canary steps and blue-green previews wait for a promotion.
local stepped = strategy.canary ~= nil or strategy.blueGreen ~= nil
local promotable = stepped and moving and not inconclusive

actions["promote"] = {
  ["disabled"] = not promotable,
  ["displayName"] = "Promote",
  ["iconClass"] = "fa fa-fw fa-forward",
}
actions["promote-full"] = {
  ["disabled"] = not promotable,
  ["displayName"] = "Promote Full",
  ["iconClass"] = "fa fa-fw fa-fast-forward",
}
actions["abort"] = {
  ["disabled"] = not (moving and inFlight),
  ["displayName"] = "Abort",
  ["iconClass"] = "fa fa-fw fa-stop",
}
actions["retry"] = {
  ["disabled"] = not ((failed and not invalid) or inconclusive),
  ["displayName"] = "Retry",
  ["iconClass"] = "fa fa-fw fa-redo",
}
actions["pause"] = {
  ["disabled"] = paused,
  ["displayName"] = "Pause",
  ["iconClass"] = "fa fa-fw fa-pause",
}
actions["resume"] = {
  ["disabled"] = not paused,
  ["displayName"] = "Resume",
  ["iconClass"] = "fa fa-fw fa-play",
}
return actions
