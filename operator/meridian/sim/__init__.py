"""The local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) and the simulated fleet.

Tests, demos and capacity what-ifs run against a real API server with real controllers; only the nodes
and the containers are simulated (by kwok), so scheduling, garbage collection, RBAC and CEL validation
behave exactly as in production.
"""
