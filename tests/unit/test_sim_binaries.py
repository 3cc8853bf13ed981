"""Binary lookup: KUBEBUILDER_ASSETS first, then MERIDIAN_BIN_DIR, then the cache; missing ones named."""

from __future__ import annotations

from pathlib import Path

import pytest

from meridian.sim import binaries

pytestmark = pytest.mark.unit


def _bins(d: Path, *names: str) -> Path:
    d.mkdir(parents=True)
    for n in names:
        f = d / n
        f.write_text("#!/bin/sh\n")
        f.chmod(0o755)
    return d


def test_each_binary_comes_from_the_first_directory_that_has_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    envtest = _bins(tmp_path / "envtest", "etcd", "kube-apiserver", "kubectl")
    explicit = _bins(tmp_path / "explicit", "kube-apiserver", "kube-scheduler")
    cache = _bins(
        tmp_path / "cache" / "bin", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"
    )
    (cache / "kwok-stages").mkdir()
    monkeypatch.setenv("KUBEBUILDER_ASSETS", str(envtest))
    monkeypatch.setenv("MERIDIAN_BIN_DIR", str(explicit))
    monkeypatch.setenv("MERIDIAN_CACHE_DIR", str(tmp_path / "cache"))
    b = binaries.locate()
    assert b.etcd == envtest / "etcd"
    assert b.kube_apiserver == envtest / "kube-apiserver"
    assert b.kubectl == envtest / "kubectl"
    assert b.kube_scheduler == explicit / "kube-scheduler"
    assert b.kube_controller_manager == cache / "kube-controller-manager"
    assert b.kwok == cache / "kwok"
    assert b.kwok_stages == cache / "kwok-stages"


def test_missing_binaries_are_named_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBEBUILDER_ASSETS", raising=False)
    monkeypatch.delenv("MERIDIAN_BIN_DIR", raising=False)
    monkeypatch.setenv("MERIDIAN_CACHE_DIR", str(tmp_path))
    _bins(tmp_path / "bin", "etcd", "kube-apiserver")
    assert binaries.missing() == ["kube-controller-manager", "kube-scheduler", "kwok", "kwok-stages"]
    with pytest.raises(binaries.BinariesMissing, match=r"not found: kube-controller-manager, .*make tools"):
        binaries.locate()
