//go:build tools

// Package tools pins the kubeconform command.
package tools

import _ "github.com/yannh/kubeconform/cmd/kubeconform"
