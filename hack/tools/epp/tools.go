//go:build tools

// Package tools pins the endpoint picker command this module builds.
package tools

import (
	_ "sigs.k8s.io/gateway-api-inference-extension/cmd/epp"
)
