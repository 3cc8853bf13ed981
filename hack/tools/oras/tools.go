//go:build tools

// Package tools pins the oras command, the OCI client the model-fetch image ships.
package tools

import _ "oras.land/oras/cmd/oras"
