"""Where the control-plane binaries are: envtest assets, an explicit bin dir, or the build cache.

The binaries are built once by hack/build-tools.sh into a cache outside the repo. Envtest's
KUBEBUILDER_ASSETS usually has only etcd, kube-apiserver and kubectl, so each binary is looked up
on its own along the search path rather than taking one directory for all.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from meridian import log

CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
OPTIONAL = ("kubectl",)
STAGES_DIR = "kwok-stages"


class BinariesMissing(RuntimeError):
    """Some binary is on none of the search paths; the message names it and how to build it."""


def cache_dir() -> Path:
    """The build cache: $MERIDIAN_CACHE_DIR, else $XDG_CACHE_HOME/meridian, else ~/.cache/meridian."""
    explicit = os.environ.get("MERIDIAN_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "meridian"


def search_path() -> list[Path]:
    """Directories to look in, first match wins: KUBEBUILDER_ASSETS, MERIDIAN_BIN_DIR, the cache."""
    dirs: list[Path] = []
    for var in ("KUBEBUILDER_ASSETS", "MERIDIAN_BIN_DIR"):
        value = os.environ.get(var)
        if value:
            dirs.append(Path(value))
    dirs.append(cache_dir() / "bin")
    return dirs


def gateway_crds() -> Path | None:
    """The Gateway API and Inference Extension CRDs hack/build-tools.sh copied from their modules."""
    return next((d / "gateway-crds" for d in search_path() if (d / "gateway-crds").is_dir()), None)


def repo_root() -> Path | None:
    """The checkout this package runs from, if it is one (an installed wheel has no hack/)."""
    root = Path(__file__).resolve().parents[3]
    return root if (root / "hack" / "build-tools.sh").is_file() else None


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of every program the control plane runs, plus kwok's Stage files."""

    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_stages: Path
    kubectl: Path | None


def _find(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        candidate = d / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


def _find_dir(name: str, dirs: list[Path]) -> Path | None:
    for d in dirs:
        candidate = d / name
        if candidate.is_dir():
            return candidate.resolve()
    return None


def missing() -> list[str]:
    """Names of the required binaries (and the kwok stage directory) found nowhere on the search path."""
    dirs = search_path()
    gone = [n for n in CONTROL_PLANE if _find(n, dirs) is None]
    if _find_dir(STAGES_DIR, dirs) is None:
        gone.append(STAGES_DIR)
    return gone


def locate() -> Binaries:
    """Find every binary or raise BinariesMissing naming each one missing and where we looked."""
    dirs = search_path()
    gone = missing()
    if gone:
        where = ", ".join(str(d) for d in dirs)
        raise BinariesMissing(
            f"control-plane binaries not found: {', '.join(gone)} (searched {where}); "
            "build them with `make tools` (hack/build-tools.sh), or set KUBEBUILDER_ASSETS / MERIDIAN_BIN_DIR"
        )

    def need(name: str) -> Path:
        found = _find(name, dirs)
        assert found is not None  # checked by missing()
        return found

    stages = _find_dir(STAGES_DIR, dirs)
    assert stages is not None
    return Binaries(
        etcd=need("etcd"),
        kube_apiserver=need("kube-apiserver"),
        kube_controller_manager=need("kube-controller-manager"),
        kube_scheduler=need("kube-scheduler"),
        kwok=need("kwok"),
        kwok_stages=stages,
        kubectl=_find("kubectl", dirs),
    )


KARMADA = ("karmada-aggregated-apiserver", "karmada-controller-manager", "karmada-scheduler", "karmada-webhook")


@dataclass(frozen=True)
class KarmadaBinaries:
    """Karmada's commands, its CRDs and the deploy manifests (webhooks, APIService) filled in at start."""

    aggregated_apiserver: Path
    controller_manager: Path
    scheduler: Path
    webhook: Path
    crds: Path
    deploy: Path


def karmada() -> KarmadaBinaries:
    """Find Karmada's build or raise BinariesMissing naming what is missing and how to build it."""
    dirs = search_path()
    found = {n: _find(n, dirs) for n in KARMADA}
    crds, deploy = _find_dir("karmada-crds", dirs), _find_dir("karmada-deploy", dirs)
    gone = [n for n, p in found.items() if p is None] + [
        n for n, d in (("karmada-crds", crds), ("karmada-deploy", deploy)) if d is None
    ]
    if gone:
        raise BinariesMissing(
            f"Karmada not found: {', '.join(gone)} (searched {', '.join(str(d) for d in dirs)}); "
            "build it with `hack/build-tools.sh karmada`"
        )

    def need(name: str) -> Path:
        path = found[name]
        assert path is not None
        return path

    assert crds is not None and deploy is not None
    return KarmadaBinaries(
        aggregated_apiserver=need("karmada-aggregated-apiserver"),
        controller_manager=need("karmada-controller-manager"),
        scheduler=need("karmada-scheduler"),
        webhook=need("karmada-webhook"),
        crds=crds,
        deploy=deploy,
    )


def build() -> None:
    """Run hack/build-tools.sh for the control-plane components (a no-op when they are cached)."""
    root = repo_root()
    if root is None:
        raise BinariesMissing(
            f"control-plane binaries missing ({', '.join(missing())}) and this is not a Meridian checkout, "
            "so they cannot be built here; set KUBEBUILDER_ASSETS or MERIDIAN_BIN_DIR"
        )
    log.get("meridian.sim").info("building control-plane binaries", script="hack/build-tools.sh")
    subprocess.run(
        [str(root / "hack" / "build-tools.sh"), "etcd", "kube", "kwok"],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def ensure(build_if_missing: bool = True) -> Binaries:
    """locate(), building first when something is missing and building is allowed and possible."""
    if build_if_missing and missing() and repo_root() is not None:
        build()
    return locate()
