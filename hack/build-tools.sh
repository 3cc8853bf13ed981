#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# kubectl), kwok and the other Go tools from the modules under hack/tools, once, into a cache
# directory outside the repo. A component is rebuilt only when its module version changes, because
# the cache path carries that version.
#
#   hack/build-tools.sh [component...]     components: etcd kube kwok helm kubeconform oras registry
#                                          fetch-clients gateway-crds karmada epp (default: all)
#   prints the bin directory on the last line of stdout
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${MERIDIAN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meridian}"
bin="$cache/bin"
mkdir -p "$bin"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export CGO_ENABLED=0

# module path and version as pinned in a tools go.mod
pinned() { awk -v m="$2" '$1==m && $2 ~ /^v/ {print $2; exit} $1=="require" && $2==m {print $3; exit}' "$here/tools/$1/go.mod"; }

build() { # component outdir ldflags pkg...
  local comp="$1" out="$2" ldflags="$3"; shift 3
  local tmp="$out.tmp.$$"
  mkdir -p "$tmp"
  echo "building $comp into $out" >&2
  (cd "$here/tools/$comp" && go build -trimpath -ldflags "$ldflags" -o "$tmp/" "$@")
  rm -rf "$out"; mv "$tmp" "$out"
}

link() { # outdir names...  (stable names in $bin point at the versioned build)
  local out="$1"; shift
  for n in "$@"; do ln -sfn "$out/$n" "$bin/$n"; done
}

want=("$@"); [ ${#want[@]} -eq 0 ] && want=(etcd kube kwok helm kubeconform oras registry fetch-clients gateway-crds karmada epp)
for comp in "${want[@]}"; do
  case "$comp" in
    etcd)
      v="$(pinned etcd go.etcd.io/etcd/server/v3)"; out="$cache/etcd-$v"
      [ -x "$out/etcd" ] || { build etcd "$out" "-s -w" go.etcd.io/etcd/server/v3 && mv "$out/server" "$out/etcd"; }
      link "$out" etcd ;;
    kube)
      v="$(pinned kube k8s.io/kubernetes)"; out="$cache/kube-$v"
      minor="$(echo "$v" | cut -d. -f2)"
      pkg=k8s.io/component-base/version
      ld="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=$v -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=$minor"
      [ -x "$out/kubectl" ] || build kube "$out" "$ld" k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
      link "$out" kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    kwok)
      v="$(pinned kwok sigs.k8s.io/kwok)"; out="$cache/kwok-$v"
      [ -x "$out/kwok" ] || build kwok "$out" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$v" sigs.k8s.io/kwok/cmd/kwok
      # kwok v0.8 ships its Stage files (what makes pods Running and nodes Ready) in the module, not the binary
      if [ ! -d "$out/stages" ]; then
        src="$(cd "$here/tools/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
        mkdir -p "$out/stages" && cp -r "$src/kustomize/stage/." "$out/stages/" && chmod -R u+w "$out/stages"
      fi
      link "$out" kwok; ln -sfn "$out/stages" "$bin/kwok-stages" ;;
    helm)
      [ -d "$here/tools/helm" ] || continue
      v="$(pinned helm helm.sh/helm/v3)"; out="$cache/helm-$v"
      # like helm's own Makefile: the Kubernetes version `helm template` and `helm lint` assume
      # (.Capabilities.KubeVersion, deprecation checks) follows the client-go helm is built with
      kminor="$(pinned helm k8s.io/client-go | cut -d. -f2)"
      ld="-s -w -X helm.sh/helm/v3/internal/version.version=$v"
      for p in pkg/lint/rules pkg/chartutil; do
        ld="$ld -X helm.sh/helm/v3/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/$p.k8sVersionMinor=$kminor"
      done
      [ -x "$out/helm" ] || build helm "$out" "$ld" helm.sh/helm/v3/cmd/helm
      link "$out" helm ;;
    kubeconform)
      [ -d "$here/tools/kubeconform" ] || continue
      v="$(pinned kubeconform github.com/yannh/kubeconform)"; out="$cache/kubeconform-$v"
      [ -x "$out/kubeconform" ] || build kubeconform "$out" "-s -w -X main.version=$v" github.com/yannh/kubeconform/cmd/kubeconform
      link "$out" kubeconform ;;
    oras)  # the OCI client of the model-fetch image, run for real by the fetch tests
      v="$(pinned oras oras.land/oras)"; out="$cache/oras-$v"
      [ -x "$out/oras" ] || build oras "$out" "-s -w" oras.land/oras/cmd/oras
      link "$out" oras ;;
    registry)  # a local OCI registry (CNCF distribution) for the fetch tests
      v="$(pinned registry github.com/distribution/distribution/v3)"; out="$cache/registry-$v"
      [ -x "$out/registry" ] || build registry "$out" "-s -w" github.com/distribution/distribution/v3/cmd/registry
      link "$out" registry ;;
    fetch-clients)  # the model-fetch image's Python clients (aws, hf) and the test stores, in a venv of their own
      reqs=("$here/../images/model-fetch/requirements.txt" "$here/tools/fetch-servers/requirements.txt")
      v="$(cat "${reqs[@]}" | sha256sum | cut -c1-12)"; out="$cache/fetch-clients-$v"
      if [ ! -x "$out/bin/moto_server" ]; then
        echo "installing fetch clients into $out" >&2
        rm -rf "$out.tmp.$$"; "${PYTHON:-python3}" -m venv "$out.tmp.$$"
        "$out.tmp.$$/bin/pip" install -q --disable-pip-version-check -r "${reqs[0]}" -r "${reqs[1]}"
        rm -rf "$out"; mv "$out.tmp.$$" "$out"
        # a venv's scripts name its python by absolute path: rewrite them for the final directory
        grep -rlI "$out.tmp.$$" "$out/bin" | xargs -r sed -i "s|$out.tmp.$$|$out|g"
      fi
      ln -sfn "$out" "$bin/fetch-clients" ;;
    gateway-crds)  # CRDs only, nothing built: Gateway API (standard channel) and the Inference Extension's
      gv="$(pinned gateway sigs.k8s.io/gateway-api)"; iv="$(pinned gateway sigs.k8s.io/gateway-api-inference-extension)"
      out="$cache/gateway-crds-$gv-$iv"
      if [ ! -f "$out/inference.networking.k8s.io_inferencepools.yaml" ]; then
        # nothing is built from these modules, so nothing has downloaded them yet: `go list` alone gives no Dir
        (cd "$here/tools/gateway" && go mod download sigs.k8s.io/gateway-api sigs.k8s.io/gateway-api-inference-extension)
        gdir="$(cd "$here/tools/gateway" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api)"
        idir="$(cd "$here/tools/gateway" && go list -m -f '{{.Dir}}' sigs.k8s.io/gateway-api-inference-extension)"
        rm -rf "$out.tmp.$$"; mkdir -p "$out.tmp.$$"
        cp "$gdir"/config/crd/standard/*.yaml "$idir"/config/crd/bases/*.yaml "$out.tmp.$$/"
        chmod -R u+w "$out.tmp.$$"; rm -rf "$out"; mv "$out.tmp.$$" "$out"
      fi
      ln -sfn "$out" "$bin/gateway-crds" ;;
    karmada)  # the multi-cluster control plane: its four commands, its CRDs and the two manifests we fill in
      v="$(pinned karmada github.com/karmada-io/karmada)"; out="$cache/karmada-$v"
      if [ ! -x "$out/karmada-scheduler" ]; then
        m=github.com/karmada-io/karmada
        build karmada "$out" "-s -w -X $m/pkg/version.gitVersion=$v" \
          $m/cmd/aggregated-apiserver $m/cmd/controller-manager $m/cmd/scheduler $m/cmd/webhook
        for c in aggregated-apiserver controller-manager scheduler webhook; do mv "$out/$c" "$out/karmada-$c"; done
        src="$(cd "$here/tools/karmada" && go list -m -f '{{.Dir}}' $m)"
        mkdir -p "$out/crds" "$out/deploy"
        find "$src/charts/karmada/_crds/bases" -name '*.yaml' -exec cp {} "$out/crds/" \;
        cp "$src/artifacts/deploy/webhook-configuration.yaml" "$src/artifacts/deploy/karmada-aggregated-apiserver-apiservice.yaml" "$out/deploy/"
        chmod -R u+w "$out/crds" "$out/deploy"
      fi
      link "$out" karmada-aggregated-apiserver karmada-controller-manager karmada-scheduler karmada-webhook
      ln -sfn "$out/crds" "$bin/karmada-crds"; ln -sfn "$out/deploy" "$bin/karmada-deploy" ;;
    epp)  # the Inference Extension's endpoint picker, and the stand-in Gateway the routing test sends requests through
      v="$(pinned epp sigs.k8s.io/gateway-api-inference-extension)"
      h="$(sha256sum "$here/tools/epp/gateway/main.go" | cut -c1-12)"; out="$cache/epp-$v-$h"
      if [ ! -x "$out/extproc-gateway" ]; then
        build epp "$out" "-s -w" sigs.k8s.io/gateway-api-inference-extension/cmd/epp ./gateway
        mv "$out/gateway" "$out/extproc-gateway"
      fi
      link "$out" epp extproc-gateway ;;
    *) echo "unknown component $comp" >&2; exit 2 ;;
  esac
done
echo "$bin"
