//go:build tools

// Package tools pins the CNCF distribution registry, the local OCI registry oras is tested against.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
