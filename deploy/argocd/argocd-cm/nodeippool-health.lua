-- Argo CD health check for podvnet.io/NodeIPPool (argocd-cm key
-- resource.customizations.health.podvnet.io_NodeIPPool). Argo CD runs it with the live object in `obj`
-- and reads hs.status (Healthy | Progressing | Degraded) and hs.message.
--   Progressing: the controller has not observed this generation of the spec yet (status.observedGeneration,
--                or the Ready condition's own observedGeneration, lags metadata.generation), or Ready is
--                not True yet (nodes still getting their first IPs).
--   Degraded:    Degraded=True or SubnetExhausted=True (for the generation observed).
--   Healthy:     Ready=True for the current generation.
local hs = {}

local function condition(conditions, kind)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == kind then return c end
  end
  return nil
end

local function describe(c, fallback)
  if c.message ~= nil and c.message ~= "" then
    if c.reason ~= nil and c.reason ~= "" then return c.reason .. ": " .. c.message end
    return c.message
  end
  if c.reason ~= nil and c.reason ~= "" then return c.reason end
  return fallback
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then generation = obj.metadata.generation end

if obj.status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the PodVNet controller to observe the pool"
  return hs
end

local observed = obj.status.observedGeneration
if observed == nil or observed < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the PodVNet controller to observe generation " .. generation ..
    " (observed " .. tostring(observed or "none") .. ")"
  return hs
end

local conditions = obj.status.conditions
local stale = function(c) return c.observedGeneration ~= nil and c.observedGeneration < generation end

local degraded = condition(conditions, "Degraded")
if degraded ~= nil and degraded.status == "True" and not stale(degraded) then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The pool is degraded")
  return hs
end

local exhausted = condition(conditions, "SubnetExhausted")
if exhausted ~= nil and exhausted.status == "True" and not stale(exhausted) then
  hs.status = "Degraded"
  hs.message = describe(exhausted, "The pool's subnet has no free addresses")
  return hs
end

local ready = condition(conditions, "Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end
if stale(ready) then
  hs.status = "Progressing"
  hs.message = "Ready reflects generation " .. ready.observedGeneration .. ", not " .. generation
  return hs
end
if ready.status == "True" then
  hs.status = "Healthy"
  local s = obj.status
  hs.message = string.format("%d nodes, %d IPs allocated, %d in use",
    s.nodes or 0, s.allocatedIPs or 0, s.usedIPs or 0)
  return hs
end

hs.status = "Progressing"
hs.message = describe(ready, "Not ready yet")
return hs
