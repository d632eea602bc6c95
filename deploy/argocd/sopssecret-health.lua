-- Argo CD health check for enseal.dev/SopsSecret: the same rules as Argo CD's built-in check
-- for bitnami.com/SealedSecret, on the same status shape (a Synced condition). Set it in
-- argocd-cm as resource.customizations.health.enseal.dev_SopsSecret (see README.md).
-- tests/it/argocd_health.rs runs it in gopher-lua on statuses enseal-controller wrote.
if obj.status ~= nil and obj.status.conditions ~= nil then
  for _, condition in ipairs(obj.status.conditions) do
    if condition.type == "Synced" and condition.status == "False" then
      return {status = "Degraded", message = condition.message}
    end
    if condition.type == "Synced" and condition.status == "True" then
      return {status = "Healthy", message = condition.message}
    end
  end
end
return {status = "Progressing", message = "Waiting for the SopsSecret to be decrypted"}
