// Not built: the Gateway API and Inference Extension modules, whose CRDs (HTTPRoute, Gateway,
// InferencePool) hack/build-tools.sh copies into the cache for the routing tests and `make run`.
module meridian.dev/hack/tools/gateway

go 1.26.0

require (
	sigs.k8s.io/gateway-api v1.4.1
	sigs.k8s.io/gateway-api-inference-extension v1.5.0
)
