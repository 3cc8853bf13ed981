-- Argo CD health check for serving.meridian.dev/ModelDeployment.
-- Meridian's status follows kstatus (observedGeneration; Ready, Reconciling, Stalled conditions):
--   Suspended    spec.paused is true (Meridian leaves the children as they are)
--   Progressing  no status yet, status.observedGeneration behind metadata.generation (the
--                conditions describe an older spec), Reconciling=True, or not Ready yet
--   Degraded     Stalled=True: Meridian cannot go on without a person (no qualifying region, ...)
--   Healthy      Ready=True: every desired replica serves
local hs = {}

if obj.spec ~= nil and obj.spec.paused == true then
  hs.status = "Suspended"
  hs.message = "spec.paused is true: Meridian does not reconcile this ModelDeployment"
  return hs
end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for Meridian to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for Meridian to observe generation " .. tostring(generation)
  return hs
end

local conditions = {}
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    conditions[c.type] = c
  end
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then
    return c.reason
  end
  return fallback
end

local stalled = conditions["Stalled"]
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled, "Stalled")
  return hs
end

local ready = conditions["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "Ready")
  return hs
end

local reconciling = conditions["Reconciling"]
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = describe(reconciling, "Reconciling")
  return hs
end

hs.status = "Progressing"
if ready ~= nil then
  hs.message = describe(ready, "Not ready yet")
else
  hs.message = "Waiting for the Ready condition"
end
return hs
