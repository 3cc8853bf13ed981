"""Placement: which regions may run a model and how many replicas each gets (pure).

plan.py is the interface the reconcile loop calls; its steps are qualify (rules and their reasons),
capacity (free GPUs per region), distribute (the weighted split) and failover (unschedulable
timeouts, holds, surge-first moves). fleet.py turns a fleet file into Regions with capacity and
cli.py is `meridian plan`.
"""
