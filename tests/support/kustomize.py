"""A small kustomize renderer, for CI machines without ``kubectl``: the subset that ``deploy/k8s`` uses.

Supported: ``resources`` (files and kustomization folders), ``patches`` (strategic-merge files: maps merge, lists of
named items merge by name, other lists are replaced), ``namespace``, ``labels`` (metadata only), ``images`` and
``replicas``. Anything else in a kustomization.yaml is refused, so a field this renderer would silently ignore
cannot slip into the tree. Where ``kubectl`` is installed, the tests check that both render the same documents.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SUPPORTED", "render"]

Manifest = dict[str, Any]
SUPPORTED = frozenset({"apiVersion", "kind", "resources", "patches", "namespace", "labels", "images", "replicas"})
_CLUSTER_SCOPED = frozenset({"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"})


def render(folder: Path) -> list[Manifest]:
    """The manifests ``kubectl kustomize folder`` would print, in resource order."""
    kustomization: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    unsupported = set(kustomization) - SUPPORTED
    if unsupported:
        raise ValueError(
            f"{folder}/kustomization.yaml: {sorted(unsupported)} not supported by tests/support/kustomize.py"
        )
    manifests: list[Manifest] = []
    for resource in kustomization.get("resources", []):
        path = folder / resource
        manifests += render(path) if path.is_dir() else _load(path)
    for patch in kustomization.get("patches", []):
        for document in _load(folder / patch["path"]):
            target = _find(manifests, document["kind"], document["metadata"]["name"])
            merged = merge(copy.deepcopy(target), document)
            target.clear()
            target.update(merged)
    for manifest in manifests:
        _transform(manifest, kustomization)
    return manifests


def _load(path: Path) -> list[Manifest]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    for manifest in manifests:
        if manifest["kind"] == kind and manifest["metadata"]["name"] == name:
            return manifest
    raise ValueError(f"no {kind} {name!r} to patch")


def merge(base: Any, patch: Any) -> Any:
    """Strategic merge, as far as deploy/k8s needs it."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        by_name = {item["name"]: item for item in base}
        for item in patch:
            by_name[item["name"]] = merge(by_name[item["name"]], item) if item["name"] in by_name else item
        return list(by_name.values())
    return patch


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _transform(manifest: Manifest, kustomization: dict[str, Any]) -> None:
    metadata = manifest.setdefault("metadata", {})
    if "namespace" in kustomization and manifest["kind"] not in _CLUSTER_SCOPED:
        metadata["namespace"] = kustomization["namespace"]
    for labels in kustomization.get("labels", []):
        if labels.get("includeSelectors") or labels.get("includeTemplates"):
            raise ValueError("labels: only metadata labels are supported (includeSelectors/includeTemplates false)")
        metadata["labels"] = {**metadata.get("labels", {}), **labels["pairs"]}
    for replicas in kustomization.get("replicas", []):
        if manifest["kind"] == "Deployment" and metadata["name"] == replicas["name"]:
            manifest["spec"]["replicas"] = replicas["count"]
    pod = manifest.get("spec", {}).get("template", {}).get("spec", {})
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for image in kustomization.get("images", []):
            if container["image"].split(":")[0] == image["name"]:
                tag = image.get("newTag", container["image"].partition(":")[2])
                container["image"] = image.get("newName", image["name"]) + (f":{tag}" if tag else "")
