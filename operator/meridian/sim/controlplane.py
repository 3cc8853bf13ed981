"""A real Kubernetes control plane as local processes: etcd, API server, controller-manager, scheduler, kwok.

Nothing is mocked: the API server has TLS, RBAC, admission and CEL; the controller-manager runs the
garbage collector, Deployment/ReplicaSet, namespace and service-account controllers; the scheduler
places pods by resources, affinity and taints. kwok stands in for kubelets. Every process is recorded
in workdir/state.json so another process (`meridian sim down`) can stop it.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from meridian import log
from meridian.sim import binaries, kubeconfig, kwok, network, pki, processes, state
from meridian.sim.processes import ProcessRecord

SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
CLUSTER_DOMAIN = "cluster.local"
SA_ISSUER = f"https://kubernetes.default.svc.{CLUSTER_DOMAIN}"
# Karmada's API server runs these of kube-controller-manager: its install's list less the CSR and token
# ones, plus the ServiceAccount controller (it creates `default`, which proves the controllers run)
HOST_CONTROLLERS = "namespace,garbagecollector,serviceaccount,serviceaccount-token,clusterrole-aggregation"
# the order processes start in; they are stopped in reverse
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


def _log() -> Any:
    """Looked up per call: a logger bound at import would miss a later log.configure()."""
    return log.get("meridian.sim")


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message carries the failing component's log tail."""


def existing_cluster_requested() -> bool:
    return os.environ.get("USE_EXISTING_CLUSTER", "").lower() == "true"


def existing_kubeconfig() -> Path:
    """The kubeconfig of an existing cluster: first entry of $KUBECONFIG, else ~/.kube/config."""
    env = os.environ.get("KUBECONFIG", "")
    first = next((p for p in env.split(os.pathsep) if p), "")
    path = Path(first).expanduser() if first else Path.home() / ".kube" / "config"
    if not path.is_file():
        raise ControlPlaneError(f"USE_EXISTING_CLUSTER=true but kubeconfig {path} does not exist")
    return path


def _tail(path: str, lines: int = 25) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: None
    resources: [{group: coordination.k8s.io, resources: [leases]}]
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/metrics", "/version", "/openapi*"]
  - level: Metadata
"""


class ControlPlane:
    """The processes of one local cluster, rooted at workdir.

    workdir holds pki/, etcd/ (data), logs/<component>.log, the kubeconfigs and state.json, and
    logs/audit.log: one JSON line per finished request (who, user agent, verb, resource), which is
    how the benchmarks count what the operator asks of the API server.
    """

    def __init__(
        self,
        workdir: Path,
        bins: binaries.Binaries | None = None,
        die_with_parent: bool = False,
        pod_cidr: str = kwok.POD_CIDR,
        nodes: bool = True,
    ) -> None:
        """die_with_parent: the processes get SIGKILL when this process dies (for tests and --foreground).

        pod_cidr: where kwok gives pods addresses; two clusters on one machine need distinct loopback
        ranges, or a test server backing a pod of one answers for a pod of the other.
        nodes: False for a control plane that never runs pods (Karmada's API server): no scheduler, no
        kwok, and of the controllers only those its objects need, as Karmada's own install runs them.
        """
        self.nodes = nodes
        self.workdir = workdir.resolve()
        self.pod_cidr = pod_cidr
        self._bins = bins
        self._die_with_parent = die_with_parent
        self.kubeconfig = self.workdir / "kubeconfig"
        self._pki: pki.PKI | None = None
        self.state: state.State | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self, timeout: float = 120.0) -> Path:
        """Start everything (or adopt USE_EXISTING_CLUSTER) and return the admin kubeconfig path.

        Returns once the API server is ready and the controllers work (the default ServiceAccount
        exists). On failure everything started is stopped again and ControlPlaneError is raised.
        """
        if existing_cluster_requested():
            self.kubeconfig = existing_kubeconfig()
            self.state = state.State(kubeconfig=str(self.kubeconfig), existing_cluster=True)
            state.save(self.workdir, self.state)
            _log().info("using existing cluster", kubeconfig=str(self.kubeconfig))
            return self.kubeconfig

        bins = self._bins or binaries.locate()
        self._clean_stale()
        t0 = time.monotonic()
        etcd_port, etcd_peer, api_port = network.free_ports(3)
        certs = pki.generate(self.workdir / "pki", SERVICE_IP)
        self._pki = certs
        server = f"https://127.0.0.1:{api_port}"
        kubeconfig.write(self.kubeconfig, server, certs.ca.cert, certs.admin, "admin")
        kcm_kc = kubeconfig.write(
            self.workdir / "kubeconfigs" / "controller-manager.yaml",
            server,
            certs.ca.cert,
            certs.controller_manager,
            "system:kube-controller-manager",
        )
        sched_kc = kubeconfig.write(
            self.workdir / "kubeconfigs" / "scheduler.yaml",
            server,
            certs.ca.cert,
            certs.scheduler,
            "system:kube-scheduler",
        )
        self.state = state.State(
            kubeconfig=str(self.kubeconfig),
            apiserver_url=server,
            ports={"etcd": etcd_port, "etcd-peer": etcd_peer, "kube-apiserver": api_port},
        )
        state.save(self.workdir, self.state)
        try:
            self.spawn("etcd", self._etcd_args(bins, etcd_port, etcd_peer))
            self.spawn("kube-apiserver", self._apiserver_args(bins, certs, api_port, etcd_port))
            ctx = network.tls_context(certs.ca.cert, certs.admin)
            self.wait_ok("kube-apiserver", f"{server}/readyz", ctx, timeout)
            _log().info("apiserver ready", seconds=round(time.monotonic() - t0, 2), url=server)
            self.spawn("kube-controller-manager", self._kcm_args(bins, certs, kcm_kc))
            if self.nodes:
                self.spawn("kube-scheduler", self._scheduler_args(bins, sched_kc))
                self.spawn("kwok", kwok.args(bins.kwok, self.kubeconfig, bins.kwok_stages, self.pod_cidr))
            # the token and service-account controllers create this; it proves the controllers run
            self.wait_ok(
                "kube-controller-manager",
                f"{server}/api/v1/namespaces/default/serviceaccounts/default",
                ctx,
                timeout,
            )
        except BaseException:
            self.stop()
            raise
        _log().info("control plane ready", seconds=round(time.monotonic() - t0, 2), workdir=str(self.workdir))
        return self.kubeconfig

    def stop(self) -> bool:
        """Stop every recorded process (reverse start order); True when none is left running."""
        st = self.state or state.load(self.workdir)
        if st is None:
            return True
        ok = stop_processes(st.processes)
        if ok:  # otherwise keep the record, so `meridian sim down` can try again
            state.remove(self.workdir)
            self.state = None
        return ok

    def __enter__(self) -> ControlPlane:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def processes(self) -> list[ProcessRecord]:
        return list(self.state.processes) if self.state else []

    def kill(self, component: str) -> None:
        """SIGKILL one component (a fault, for tests): no grace, as when a machine dies."""
        rec = self._record(component)
        processes.kill(rec)
        _log().info("killed", component=component, pid=rec.pid)

    def revive(self, component: str, timeout: float = 60.0) -> None:
        """Start a killed component again with the same arguments (and data); wait for the API server."""
        assert self.state is not None
        rec = self._record(component)
        new = processes.spawn(component, rec.args, self.workdir / "logs", die_with_parent=self._die_with_parent)
        self.state.processes[self.state.processes.index(rec)] = new
        state.save(self.workdir, self.state)
        assert self._pki is not None, "revive needs a control plane this object started"
        ctx = network.tls_context(self._pki.ca.cert, self._pki.admin)
        self.wait_ok("kube-apiserver", f"{self.state.apiserver_url}/readyz", ctx, timeout)
        _log().info("revived", component=component, pid=new.pid)

    def _record(self, component: str) -> ProcessRecord:
        found = [p for p in self.processes if p.name == component]
        if not found:
            raise ControlPlaneError(f"no {component} in this control plane")
        return found[0]

    # -- internals ---------------------------------------------------------------------------------

    def _clean_stale(self) -> None:
        """Stop leftovers of an earlier run in this workdir, then start from empty data and logs."""
        old = state.load(self.workdir)
        if old is not None:
            alive = [p for p in old.processes if processes.alive(p)]
            if old.processes and len(alive) == len(old.processes):
                raise ControlPlaneError(
                    f"a control plane is already running in {self.workdir}; run `meridian sim down` first"
                )
            if alive:
                _log().info("stopping what is left of a broken control plane", components=[p.name for p in alive])
                if not stop_processes(alive):
                    raise ControlPlaneError(f"could not stop leftover processes in {self.workdir}")
            state.remove(self.workdir)
        for sub in ("etcd", "logs", "pki", "kubeconfigs"):
            shutil.rmtree(self.workdir / sub, ignore_errors=True)
        self.workdir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, args: list[str]) -> None:
        assert self.state is not None
        rec = processes.spawn(name, args, self.workdir / "logs", die_with_parent=self._die_with_parent)
        self.state.processes.append(rec)
        state.save(self.workdir, self.state)
        _log().debug("started", component=name, pid=rec.pid)

    def wait_ok(self, component: str, url: str, ctx: ssl.SSLContext, timeout: float) -> None:
        """Poll url until 200, failing early (with the log tail) if any started process exits."""
        assert self.state is not None
        deadline = time.monotonic() + timeout
        status, body = 0, ""
        while time.monotonic() < deadline:
            for rec in self.state.processes:
                if not processes.alive(rec):
                    raise ControlPlaneError(f"{rec.name} exited during startup; last log lines:\n{_tail(rec.log)}")
            status, body = network.get(url, ctx)
            if status == 200:
                return
            time.sleep(0.2)
        logf = self.workdir / "logs" / f"{component}.log"
        raise ControlPlaneError(
            f"timed out after {timeout:.0f}s waiting for {url} (last status {status}: {body[:300]}); "
            f"{component} log tail:\n{_tail(str(logf))}"
        )

    def _etcd_args(self, bins: binaries.Binaries, port: int, peer: int) -> list[str]:
        peer_url = f"http://127.0.0.1:{peer}"
        client_url = f"http://127.0.0.1:{port}"
        return [
            str(bins.etcd),
            "--name=meridian-sim",
            f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=meridian-sim={peer_url}",
            "--initial-cluster-state=new",
            # a throwaway cluster: durability is not worth the fsync latency
            "--unsafe-no-fsync=true",
            "--quota-backend-bytes=2147483648",
            "--log-level=warn",
        ]

    def _apiserver_args(self, bins: binaries.Binaries, c: pki.PKI, port: int, etcd_port: int) -> list[str]:
        return [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={port}",
            f"--tls-cert-file={c.apiserver.cert}",
            f"--tls-private-key-file={c.apiserver.key}",
            f"--client-ca-file={c.ca.cert}",
            "--authorization-mode=Node,RBAC",
            # how aggregated API servers (Karmada's) learn who the API server forwards a request for
            f"--proxy-client-cert-file={c.front_proxy.cert}",
            f"--proxy-client-key-file={c.front_proxy.key}",
            f"--requestheader-client-ca-file={c.ca.cert}",
            f"--requestheader-allowed-names={pki.FRONT_PROXY_CN}",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={c.sa_public}",
            f"--service-account-signing-key-file={c.sa_private}",
            f"--api-audiences={SA_ISSUER}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            # no real endpoints behind the kubernetes Service: 127.0.0.1 is not a valid endpoint address
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--event-ttl=1h",
            f"--audit-policy-file={self._audit_policy()}",
            f"--audit-log-path={self.audit_log}",
            "--audit-log-format=json",
            "--audit-log-maxsize=200",
            "--audit-log-maxbackup=1",
            "--v=1",
        ]

    @property
    def audit_log(self) -> Path:
        return self.workdir / "logs" / "audit.log"

    def _audit_policy(self) -> Path:
        """Metadata of every finished request but leases (kwok renews one per node every few seconds)."""
        policy = self.workdir / "pki" / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        return policy

    def _kcm_args(self, bins: binaries.Binaries, c: pki.PKI, kc: Path) -> list[str]:
        return [
            str(bins.kube_controller_manager),
            f"--kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            f"--controllers={'*' if self.nodes else HOST_CONTROLLERS}",
            "--use-service-account-credentials=true",
            f"--root-ca-file={c.ca.cert}",
            f"--service-account-private-key-file={c.sa_private}",
            f"--cluster-signing-cert-file={c.ca.cert}",
            f"--cluster-signing-key-file={c.ca.key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # react quickly: tests wait on GC, scaling and rollouts
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--profiling=false",
            "--v=1",
        ]

    def _scheduler_args(self, bins: binaries.Binaries, kc: Path) -> list[str]:
        return [
            str(bins.kube_scheduler),
            f"--kubeconfig={kc}",
            "--bind-address=127.0.0.1",
            "--secure-port=0",
            "--leader-elect=false",
            "--profiling=false",
            "--kube-api-qps=100",
            "--kube-api-burst=200",
            "--v=1",
        ]


def stop_processes(recs: list[ProcessRecord], grace: float = 10.0) -> bool:
    """Stop recorded processes in reverse start order; True when none of them is left."""
    ok = True
    for rec in reversed(recs):
        try:
            stopped = processes.stop(rec, grace=grace)
        except OSError as e:
            _log().error("could not stop process", component=rec.name, pid=rec.pid, error=str(e))
            stopped = False
        if not stopped:
            _log().error("process left running", component=rec.name, pid=rec.pid)
        ok = ok and stopped
    return ok
