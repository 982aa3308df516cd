-- Argo CD health check for podvnet.io/NodeIPAllocation (argocd-cm key
-- resource.customizations.health.podvnet.io_NodeIPAllocation): the per-node records are children of their
-- pool, so this colours the resource tree; the Application's health comes from the pools.
--   Progressing: no status yet, status for an older generation, or Ready=False while IPs are being added.
--   Degraded:    Ready=False for a reason that waiting does not fix (no NIC, bad providerID, full subnet,
--                a NIC that may not hold ip-configs of the pool's subnet next to its own,
--                an Azure error that is not a race: authorization, a bad request, an outage,
--                a Block pool on a subnet another pool uses in the other mode, a Block pool's subnet with
--                free addresses but no free aligned /28).
--   Healthy:     Ready=True.
local hs = {}
local permanent = { NICNotFound = true, InvalidProviderID = true, SubnetFull = true, AzureError = true, SubnetNotAllowedOnNIC = true, AllocationModeConflict = true, NoAlignedBlock = true }

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then generation = obj.metadata.generation end

if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the PodVNet controller to read this node's NIC"
  return hs
end
if obj.status.observedGeneration ~= nil and obj.status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the PodVNet controller to observe generation " .. generation
  return hs
end

local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Ready" then ready = c end
end
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
  return hs
end

local text = ready.reason or ""
if ready.message ~= nil and ready.message ~= "" then text = text .. ": " .. ready.message end
if ready.status == "True" then
  hs.status = "Healthy"
elseif ready.status == "False" and permanent[ready.reason] then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = text
return hs
