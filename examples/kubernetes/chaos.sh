#!/usr/bin/env bash
# Runs one faultline command in every pod a label selector matches, each in its own session
# (named after the pod, FAULTLINE_SESSION=$(POD_NAME)):
#
#   chaos.sh app=checkout enable db-refused
#   chaos.sh app=checkout status
#   chaos.sh app=checkout panic            # the emergency stop, everywhere
#
# Needs only the Role of rbac.yaml. NAMESPACE (default: the context's) and CONTAINER
# (default: app) select where; a pod where the command fails is reported and the others
# still get it; the exit status is 1 if any failed.
set -uo pipefail
selector=${1:?usage: chaos.sh SELECTOR FAULTLINE-ARGS...}
shift
ns=()
[ -n "${NAMESPACE:-}" ] && ns=(--namespace "$NAMESPACE")
status=0
for pod in $(kubectl get pods "${ns[@]}" -l "$selector" --field-selector=status.phase=Running -o name); do
  name=${pod#pod/}
  # The session is the pod's name; FAULTLINE_DISABLE=1 keeps the controller itself unfaulted
  # (it inherits the container's LD_PRELOAD).
  if ! kubectl exec "${ns[@]}" "$name" -c "${CONTAINER:-app}" -- \
       env FAULTLINE_DISABLE=1 /opt/faultline/faultline "$1" "$name" "${@:2}"; then
    echo "chaos.sh: $name: failed" >&2
    status=1
  fi
done
exit $status
