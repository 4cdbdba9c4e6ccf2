-- Argo CD health check for serin.dev/Release (serin's progressive-delivery workload).
--
-- serin writes its status in the kstatus convention (src/api/release.rs,
-- src/plan/release.rs `set_conditions`): conditions Ready, Progressing and
-- Degraded, a phase (Progressing, Paused, Healthy or Degraded), a message,
-- and observedGeneration.
--
-- Argo CD runs this without Lua's standard libraries: base and table only,
-- so no string.* or math.* here.
local hs = {}

local function condition(status, kind)
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

local status = obj.status
local generation = tonumber(obj.metadata.generation)
local observed = nil
if status ~= nil then
  observed = tonumber(status.observedGeneration)
end
-- A status written for an older spec says nothing about the current one.
if observed == nil or (generation ~= nil and generation > observed) then
  hs.status = "Progressing"
  hs.message = "Waiting for the controller to observe the spec"
  return hs
end

local degraded = condition(status, "Degraded")
local ready = condition(status, "Ready")
if (degraded ~= nil and degraded.status == "True") or status.phase == "Degraded" then
  -- Rolled back (AnalysisFailed, ProgressDeadlineExceeded, Aborted) or InvalidSpec.
  hs.status = "Degraded"
elseif status.phase == "Paused" then
  -- spec.paused, a canary `pause: {}` step, a blue-green preview awaiting
  -- promotion, or an inconclusive analysis: waiting for a person.
  hs.status = "Suspended"
elseif ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
else
  hs.status = "Progressing"
end
hs.message = status.message
return hs
