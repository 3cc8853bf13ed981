"""How kwok is told which nodes are fake and what lifecycle they and their pods go through.

kwok v0.8 ships no built-in behaviour: Stage objects passed with --config drive every transition.
The "fast" stages make a node Ready as soon as it exists and a scheduled pod Running at once;
leases (renewed by kwok itself) keep nodes Ready without rewriting node status every few seconds.
"""

from __future__ import annotations

from pathlib import Path

NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_ANNOTATION_VALUE = "fake"
NODE_TYPE_LABEL = "type"
NODE_TYPE_VALUE = "kwok"

# pod IPs come from a loopback range, so a real process (a Triton test server) can listen on one
POD_CIDR = "127.40.0.0/16"
# each node gets an InternalIP from here; pods' hostIP follows it
NODE_IP_PREFIX = "127.41"
# kwok renews node leases every quarter of this (15 s), well inside the node lifecycle controller's 50 s grace
NODE_LEASE_SECONDS = 60

STAGES = (
    "node/fast/node-initialize.yaml",
    "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "pod/fast/pod-ready.yaml",
    "pod/fast/pod-complete.yaml",
    "pod/fast/pod-delete.yaml",
)


def stage_files(stages_dir: Path) -> list[Path]:
    """The Stage files to pass as --config, failing clearly if the copied kwok stage tree lacks one."""
    files = [stages_dir / s for s in STAGES]
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"kwok stage files missing: {', '.join(absent)}; rebuild with `make tools`")
    return files


def args(kwok: Path, kubeconfig: Path, stages_dir: Path, pod_cidr: str = POD_CIDR) -> list[str]:
    """Command line of a kwok that manages only nodes annotated as fake (so real nodes are left alone)."""
    cmd = [
        str(kwok),
        f"--kubeconfig={kubeconfig}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={NODE_ANNOTATION}={NODE_ANNOTATION_VALUE}",
        f"--cidr={pod_cidr}",
        f"--node-lease-duration-seconds={NODE_LEASE_SECONDS}",
    ]
    cmd += [f"--config={f}" for f in stage_files(stages_dir)]
    return cmd
