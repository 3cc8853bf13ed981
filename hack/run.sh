#!/usr/bin/env bash
# `make run`: Meridian against your cluster when KUBECONFIG is set, else against the simulated EU fleet.
#   hack/run.sh <fleet file> <sim workdir>
# Ctrl-C stops the operator and, for the simulated fleet, the control plane too (KEEP_SIM=1 keeps it).
set -euo pipefail
fleet="${1:-examples/fleets/eu.yaml}"
workdir="${2:-.meridian-sim}"

if [ -z "${KUBECONFIG:-}" ] && [ "${USE_EXISTING_CLUSTER:-}" != "true" ]; then
  meridian sim up --fleet "$fleet" --workdir "$workdir"
  export KUBECONFIG="$PWD/$workdir/kubeconfig"
  if [ "${KEEP_SIM:-}" != "1" ]; then trap 'meridian sim down --workdir "$workdir"' EXIT; fi
  cat <<MSG

  The simulated fleet is up. In another terminal:
    export KUBECONFIG=$KUBECONFIG
    export PATH="\$PATH:${MERIDIAN_BIN_DIR:-$HOME/.cache/meridian/bin}"
    kubectl get regions
    kubectl create namespace demo && kubectl apply -n demo -f examples/llama-3-8b.yaml
    kubectl get mdep,deploy,pods -n demo -o wide

MSG
else
  kubectl="${MERIDIAN_BIN_DIR:-$HOME/.cache/meridian/bin}/kubectl"
  command -v kubectl >/dev/null && kubectl="kubectl"
  "$kubectl" apply --server-side --field-manager=meridian-install -f crds/
fi
meridian run --log-format "${MERIDIAN_LOG_FORMAT:-console}"
