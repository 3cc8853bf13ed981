#!/usr/bin/env bash
# `make run`: Meridian against your cluster when KUBECONFIG is set, else against the simulated EU fleet
# (or, for a fleet file with `topology: clusters`, Karmada and a member cluster per region).
#   hack/run.sh <fleet file> <sim workdir>
# Installs what each README feature needs (the CRDs, the residency admission policy), prints a tour
# for a second terminal (tests/e2e/test_make_run_tour.py runs it as printed), then runs the operator
# in the foreground. Ctrl-C stops the operator and, for the simulated fleet, the control plane too
# (KEEP_SIM=1 keeps it).
set -euo pipefail
fleet="${1:-examples/fleets/eu.yaml}"
workdir="${2:-.meridian-sim}"
bin="${MERIDIAN_BIN_DIR:-$HOME/.cache/meridian/bin}"
kubectl="$bin/kubectl"
command -v kubectl >/dev/null && kubectl="kubectl"

if [ -z "${KUBECONFIG:-}" ] && [ "${USE_EXISTING_CLUSTER:-}" != "true" ]; then
  meridian sim up --fleet "$fleet" --workdir "$workdir"  # the CRDs, the nodes, the Regions
  KUBECONFIG="$(cd "$workdir" && pwd)/kubeconfig"; export KUBECONFIG
  if [ "${KEEP_SIM:-}" != "1" ]; then trap 'meridian sim down --workdir "$workdir"' EXIT; fi
  "$kubectl" apply --server-side --field-manager=meridian-install -f examples/admission/residency-policy.yaml
  if grep -q '^topology: clusters' "$fleet"; then
    cat <<MSG

  Karmada and a member cluster per region are up, and Meridian is starting. A tour, in another terminal from $PWD:

    export KUBECONFIG=$KUBECONFIG PATH="\$PATH:$bin"
    kubectl get clusters --show-labels                    # the members and the jurisdictions they carry
    kubectl get regions
    kubectl create namespace bank-a
    kubectl apply -n bank-a -f examples/karmada/llama-3-8b.yaml   # EU only, gra 2 : lim 1
    kubectl wait -n bank-a --for=condition=Ready mdep/llama-3-8b --timeout=180s
    kubectl get propagationpolicies -n bank-a             # pinned by cluster name and by jurisdiction
    kubectl --kubeconfig $workdir/members/gra/kubeconfig get pods -n bank-a -o wide
    kubectl --kubeconfig $workdir/members/eri/kubeconfig get all -n bank-a   # the UK member: nothing

MSG
  else
  cat <<MSG

  The simulated fleet is up and Meridian is starting. A tour, in another terminal from $PWD:

    export KUBECONFIG=$KUBECONFIG PATH="\$PATH:$bin"
    kubectl get regions                                   # GPUs per region, free and in use
    kubectl create namespace bank-a
    kubectl label namespace bank-a serving.meridian.dev/residency=EU
    kubectl apply -n bank-a -f examples/llama-3-8b.yaml   # 3 replicas, EU only, gra 2 : rbx 1
    kubectl wait -n bank-a --for=condition=Ready mdep/llama-3-8b --timeout=120s
    kubectl get deploy -n bank-a -o wide                  # one Deployment per region
    meridian residency check -n bank-a                    # each pod, its node, Region, jurisdictions
    kubectl apply -n bank-a -f examples/uk-only.yaml      # refused: bank-a is EU-only (admission)
    kubectl patch region gra --type=merge -p '{"spec":{"cordoned":true}}'   # gra in maintenance
    kubectl wait -n bank-a --for=jsonpath='{.status.regions[?(@.name=="rbx")].readyReplicas}'=3 mdep/llama-3-8b --timeout=120s
    kubectl get events -n bank-a --field-selector involvedObject.name=llama-3-8b   # every move
    kubectl patch region gra --type=merge -p '{"spec":{"cordoned":false}}'  # and back afterwards
    kubectl wait -n bank-a --for=jsonpath='{.status.regions[?(@.name=="gra")].readyReplicas}'=2 mdep/llama-3-8b --timeout=120s
    kubectl get mdep -n bank-a -o wide
    kubectl apply -n bank-a -f examples/gateway.yaml -f examples/llama-3-8b-chat.yaml   # routed from a Gateway
    kubectl wait -n bank-a --for=jsonpath='{.status.routing.inferencePool}'=llama-3-8b-chat mdep/llama-3-8b-chat --timeout=120s
    kubectl get inferencepool,httproute,deploy -n bank-a   # the pool, the route, the endpoint picker

MSG
  fi
else
  "$kubectl" apply --server-side --field-manager=meridian-install -f crds/
  "$kubectl" apply --server-side --field-manager=meridian-install -f examples/admission/residency-policy.yaml
fi
meridian run --log-format "${MERIDIAN_LOG_FORMAT:-console}"
