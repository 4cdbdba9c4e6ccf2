-- Release objects in each state serin's controller writes. Status follows
-- src/api/release.rs, reasons and messages src/plan/*.rs. These are data:
-- `argocd-lua test argocd` (e2e/tools/argocd-lua, run by `make argocd`) turns
-- each into JSON (a table with keys 1..n is an array, any other, the empty
-- one too, an object), reads it back as Argo CD reads an object from the API
-- server, and runs the scripts on it in gopher-lua set up as Argo CD sets it up.
--
-- Each fixture: name, obj, the expected health (status and message), and the
-- actions discovery should enable.

local WAITING = "Waiting for the controller to observe the spec"
local T0 = "2026-03-02T10:00:00Z"
local T1 = "2026-03-02T10:04:10Z"
local STABLE = "4f1c2a9b7e"
local NEW = "8d3e6b0c51"

local strategies = {
  rolling = { rolling = { maxSurge = 2, maxUnavailable = 1 } },
  rollingAnalysis = {
    rolling = {
      maxSurge = "25%",
      analysis = { templates = { { templateName = "error-rate" } } },
    },
  },
  canary = {
    canary = {
      stableService = "web",
      canaryService = "web-canary",
      trafficRouting = { gatewayAPI = { httpRoutes = { { name = "web" } } } },
      steps = {
        { setWeight = 20 },
        { pause = {} },
        { setWeight = 50 },
        { pause = { duration = "5m" } },
      },
    },
  },
  blueGreen = {
    blueGreen = {
      activeService = "web",
      previewService = "web-preview",
      autoPromotionEnabled = false,
    },
  },
}

-- The three conditions as `set_conditions` writes them (src/plan/release.rs).
local function conditions(generation, phase, why, message, progressing, degraded)
  local ready = phase == "Healthy"
  local progressingReason = why
  if ready then
    progressingReason = "RolloutComplete"
  end
  local function bool(b)
    if b then
      return "True"
    end
    return "False"
  end
  local list = {
    { type = "Ready", status = bool(ready), reason = why, message = message },
    { type = "Progressing", status = bool(progressing), reason = progressingReason, message = message },
  }
  if degraded ~= nil then
    list[3] = { type = "Degraded", status = "True", reason = degraded, message = message }
  else
    list[3] = { type = "Degraded", status = "False", reason = "AsExpected", message = "No failure" }
  end
  for _, c in ipairs(list) do
    c.observedGeneration = generation
    c.lastTransitionTime = T1
  end
  return list
end

-- A Release as the API server returns it: defaults filled in, status optional.
-- s: generation, strategy (a key of `strategies`), paused, image, and status
-- fields: phase, why, message, progressing, degraded, observedGeneration, extra.
local function release(s)
  local generation = s.generation or 2
  local obj = {
    apiVersion = "serin.dev/v1alpha1",
    kind = "Release",
    metadata = {
      name = "web",
      namespace = "shop",
      uid = "0b6f7f7c-3c9e-4d1a-9a57-2f2f0e1f6a10",
      generation = generation,
      resourceVersion = "48213",
      creationTimestamp = T0,
      labels = { ["app.kubernetes.io/instance"] = "shop" },
      annotations = { ["argocd.argoproj.io/tracking-id"] = "shop:serin.dev/Release:shop/web" },
    },
    spec = {
      replicas = 4,
      selector = { matchLabels = { app = "web" } },
      template = {
        metadata = { labels = { app = "web" } },
        spec = {
          containers = {
            {
              name = "web",
              image = s.image or "registry.example.com/web:2",
              ports = { { containerPort = 8080, name = "http" } },
              resources = {},
            },
          },
        },
      },
      minReadySeconds = 0,
      progressDeadlineSeconds = 600,
      revisionHistoryLimit = 10,
      paused = s.paused or false,
      strategy = strategies[s.strategy or "rolling"],
    },
  }
  if s.phase == nil then
    return obj
  end
  local strategyName = "Rolling"
  if s.strategy == "canary" then
    strategyName = "Canary"
  elseif s.strategy == "blueGreen" then
    strategyName = "BlueGreen"
  end
  local observed = s.observedGeneration or generation
  obj.status = {
    observedGeneration = observed,
    phase = s.phase,
    strategy = strategyName,
    conditions = conditions(observed, s.phase, s.why, s.message, s.progressing, s.degraded),
    currentRevision = NEW,
    stableRevision = STABLE,
    rolloutStartTime = T0,
    replicas = 4,
    updatedReplicas = 0,
    readyReplicas = 4,
    availableReplicas = 4,
    selector = "app=web",
    message = s.message,
  }
  for k, v in pairs(s.extra or {}) do
    obj.status[k] = v
  end
  return obj
end

local fixtures = {}
local function add(f)
  fixtures[#fixtures + 1] = f
end

add({
  name = "no status yet",
  obj = release({ generation = 1 }),
  health = { "Progressing", WAITING },
  enabled = { "pause" },
})

local message = "Revision " .. STABLE .. ": all 4 replicas available"
add({
  name = "old observedGeneration",
  -- The template just changed; the status is still the last rollout's.
  obj = release({
    generation = 3, observedGeneration = 2,
    phase = "Healthy", why = "Available", message = message, progressing = false,
    extra = { currentRevision = STABLE, updatedReplicas = 4 },
  }),
  health = { "Progressing", WAITING },
  enabled = { "pause" },
})

message = "Rolling out revision " .. NEW .. ": 2 of 4 updated replicas available, 3 old replicas remain"
add({
  name = "rolling update in progress",
  obj = release({
    phase = "Progressing", why = "RollingUpdate", message = message, progressing = true,
    extra = { replicas = 5, updatedReplicas = 2, readyReplicas = 5, availableReplicas = 5 },
  }),
  health = { "Progressing", message },
  enabled = { "abort", "pause" },
})

message = "Canary revision " .. NEW .. " at step 1/4 (setWeight 20): weight 20%, 0 of 1 canary pods available"
add({
  name = "canary at a setWeight step",
  obj = release({
    strategy = "canary",
    phase = "Progressing", why = "CanaryStep", message = message, progressing = true,
    extra = {
      currentStepIndex = 0, canaryWeight = 20,
      canary = { revision = NEW, stepStartedAt = T1, unavailableSince = T1 },
    },
  }),
  health = { "Progressing", message },
  enabled = { "promote", "promote-full", "abort", "pause" },
})

message = "Canary revision " .. NEW .. " at step 2/4 (pause): weight 20%, 1 of 1 canary pods available. Paused until promoted"
add({
  name = "canary at a pause: {} step",
  obj = release({
    strategy = "canary",
    phase = "Paused", why = "CanaryPauseStep", message = message, progressing = true,
    extra = {
      currentStepIndex = 1, canaryWeight = 20, updatedReplicas = 1,
      canary = { revision = NEW, stepStartedAt = T1 },
    },
  }),
  health = { "Suspended", message },
  enabled = { "promote", "promote-full", "abort", "pause" },
})

message = "Preview of revision " .. NEW .. " is ready and checked; promote to switch"
add({
  name = "blue-green awaiting promotion",
  obj = release({
    strategy = "blueGreen",
    phase = "Paused", why = "AwaitingPromotion", message = message, progressing = true,
    extra = {
      replicas = 8, updatedReplicas = 4, readyReplicas = 8, availableReplicas = 8,
      blueGreen = { activeRevision = STABLE, previewRevision = NEW, previewReadyAt = T1 },
    },
  }),
  health = { "Suspended", message },
  enabled = { "promote", "promote-full", "abort", "pause" },
})

message = "Rollout of revision " .. NEW .. " is paused (spec.paused); set it to false to resume"
add({
  name = "spec.paused, with a promotion kept for the resume",
  obj = release({
    strategy = "canary", paused = true,
    phase = "Paused", why = "Paused", message = message, progressing = false,
    extra = {
      currentStepIndex = 1, canaryWeight = 20, updatedReplicas = 1,
      canary = { revision = NEW, stepStartedAt = T1 },
      -- A promote asked for while paused stays until the resume.
      control = { promote = true },
    },
  }),
  health = { "Suspended", message },
  enabled = { "promote", "promote-full", "abort", "resume" },
})

message = "Rollout of revision " .. NEW .. " paused: error-rate: 2 of 5 measurements inconclusive. Retry, or change the template, to go on"
add({
  name = "analysis inconclusive",
  obj = release({
    strategy = "rollingAnalysis",
    phase = "Paused", why = "InconclusiveAnalysis", message = message, progressing = false,
    extra = {
      updatedReplicas = 4,
      analysis = { revision = NEW, phase = "Inconclusive", message = "error-rate: 2 of 5 measurements inconclusive", startedAt = T0 },
    },
  }),
  health = { "Suspended", message },
  enabled = { "abort", "retry", "pause" },
})

message = "Revision " .. NEW .. ": all 4 replicas available"
add({
  name = "healthy",
  obj = release({
    strategy = "canary",
    phase = "Healthy", why = "Available", message = message, progressing = false,
    extra = { stableRevision = NEW, updatedReplicas = 4, currentStepIndex = 4, canaryWeight = 100 },
  }),
  health = { "Healthy", message },
  enabled = { "pause" },
})

message = "Rolled back revision " .. NEW .. " (AnalysisFailed: success-rate 0.42 < 0.95); revision " .. STABLE
  .. " has all 4 replicas available. Change the template, or retry, to roll out again"
add({
  name = "degraded: analysis failed",
  obj = release({
    strategy = "canary",
    phase = "Degraded", why = "AnalysisFailed", message = message, progressing = false, degraded = "AnalysisFailed",
    extra = { failedRevision = NEW, currentStepIndex = 2, canaryWeight = 0, canary = { revision = NEW } },
  }),
  health = { "Degraded", message },
  enabled = { "retry", "pause" },
})

message = "Rolled back revision " .. NEW .. " (Aborted: aborted by request); restoring revision " .. STABLE
  .. " to 4 available replicas. Change the template, or retry, to roll out again"
add({
  name = "degraded: aborted",
  obj = release({
    strategy = "blueGreen",
    phase = "Degraded", why = "Aborted", message = message, progressing = false, degraded = "Aborted",
    extra = {
      failedRevision = NEW, availableReplicas = 2,
      blueGreen = { activeRevision = STABLE, previewRevision = NEW, previewReadyAt = T1 },
    },
  }),
  health = { "Degraded", message },
  enabled = { "retry", "pause" },
})

message = "spec.selector does not match spec.template.metadata.labels"
add({
  name = "degraded: invalid spec",
  obj = release({
    phase = "Degraded", why = "InvalidSpec", message = message, progressing = false, degraded = "InvalidSpec",
  }),
  health = { "Degraded", message },
  enabled = { "pause" },
})

message = "Revision " .. NEW .. " was not available within progressDeadlineSeconds (600s) and there is no stable revision to roll back to"
local first = release({
  generation = 1,
  phase = "Degraded", why = "ProgressDeadlineExceeded", message = message, progressing = true,
  degraded = "ProgressDeadlineExceeded",
  extra = { readyReplicas = 0, availableReplicas = 0, updatedReplicas = 4 },
})
first.status.stableRevision = nil -- nothing was ever stable
add({
  name = "degraded: first revision past its deadline",
  obj = first,
  health = { "Degraded", message },
  enabled = { "retry", "pause" },
})

return fixtures
