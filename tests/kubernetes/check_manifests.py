#!/usr/bin/env python3
"""Checks the manifests of examples/kubernetes without a cluster: every document parses
(PyYAML), every field is named as the Kubernetes API names it (a subset of the API's types,
written from the API reference: enough for what the examples use, and a misspelt or
misplaced field is an error), and the references inside a pod hold: each volumeMount names a
volume of the pod, each $(VAR) in an env value names a variable defined before it, the
ConfigMap a volume names exists with a policy.toml key. Prints the policies it found in
ConfigMaps into OUT_DIR (for `faultline validate`).

    check_manifests.py MANIFEST_DIR [OUT_DIR]
"""
import os
import re
import sys

import yaml

# type name -> {field: type}; "str", "int", "bool", "any" are leaves; [T] is a list of T.
OBJECT_META = {"name": "str", "namespace": "str", "labels": "map", "annotations": "map"}
TYPES = {
    "ObjectMeta": OBJECT_META,
    "LabelSelector": {"matchLabels": "map", "matchExpressions": "any"},
    "DeploymentSpec": {"replicas": "int", "selector": "LabelSelector",
                       "template": "PodTemplateSpec", "strategy": "any",
                       "minReadySeconds": "int", "revisionHistoryLimit": "int",
                       "progressDeadlineSeconds": "int", "paused": "bool"},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {"containers": ["Container"], "initContainers": ["Container"],
                "volumes": ["Volume"], "shareProcessNamespace": "bool",
                "securityContext": "PodSecurityContext", "serviceAccountName": "str",
                "automountServiceAccountToken": "bool", "restartPolicy": "str",
                "terminationGracePeriodSeconds": "int", "nodeSelector": "map"},
    "PodSecurityContext": {"runAsUser": "int", "runAsGroup": "int", "runAsNonRoot": "bool",
                           "fsGroup": "int", "seccompProfile": "SeccompProfile",
                           "supplementalGroups": ["int"]},
    "SeccompProfile": {"type": "str", "localhostProfile": "str"},
    "Container": {"name": "str", "image": "str", "imagePullPolicy": "str",
                  "command": ["str"], "args": ["str"], "workingDir": "str",
                  "env": ["EnvVar"], "envFrom": "any", "ports": "any",
                  "volumeMounts": ["VolumeMount"], "securityContext": "SecurityContext",
                  "resources": "ResourceRequirements", "readinessProbe": "any",
                  "livenessProbe": "any", "startupProbe": "any", "stdin": "bool",
                  "tty": "bool"},
    "EnvVar": {"name": "str", "value": "str", "valueFrom": "EnvVarSource"},
    "EnvVarSource": {"fieldRef": "ObjectFieldSelector", "configMapKeyRef": "any",
                     "secretKeyRef": "any", "resourceFieldRef": "any"},
    "ObjectFieldSelector": {"fieldPath": "str", "apiVersion": "str"},
    "VolumeMount": {"name": "str", "mountPath": "str", "readOnly": "bool", "subPath": "str",
                    "mountPropagation": "str"},
    "SecurityContext": {"allowPrivilegeEscalation": "bool", "readOnlyRootFilesystem": "bool",
                        "runAsUser": "int", "runAsGroup": "int", "runAsNonRoot": "bool",
                        "privileged": "bool", "capabilities": "Capabilities",
                        "seccompProfile": "SeccompProfile"},
    "Capabilities": {"add": ["str"], "drop": ["str"]},
    "ResourceRequirements": {"limits": "map", "requests": "map"},
    "Volume": {"name": "str", "emptyDir": "EmptyDirVolumeSource",
               "configMap": "ConfigMapVolumeSource", "image": "ImageVolumeSource",
               "secret": "any", "persistentVolumeClaim": "any"},
    "EmptyDirVolumeSource": {"medium": "str", "sizeLimit": "quantity"},
    "ConfigMapVolumeSource": {"name": "str", "items": ["KeyToPath"], "defaultMode": "int",
                              "optional": "bool"},
    "ImageVolumeSource": {"reference": "str", "pullPolicy": "str"},
    "KeyToPath": {"key": "str", "path": "str", "mode": "int"},
    "PolicyRule": {"apiGroups": ["str"], "resources": ["str"], "verbs": ["str"],
                   "resourceNames": ["str"], "nonResourceURLs": ["str"]},
    "Subject": {"kind": "str", "name": "str", "namespace": "str", "apiGroup": "str"},
    "RoleRef": {"apiGroup": "str", "kind": "str", "name": "str"},
}
KINDS = {
    ("apps/v1", "Deployment"): {"spec": "DeploymentSpec"},
    ("v1", "Pod"): {"spec": "PodSpec"},
    ("v1", "ConfigMap"): {"data": "map", "binaryData": "map", "immutable": "bool"},
    ("v1", "ServiceAccount"): {"automountServiceAccountToken": "bool"},
    ("rbac.authorization.k8s.io/v1", "Role"): {"rules": ["PolicyRule"]},
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): {"subjects": ["Subject"],
                                                       "roleRef": "RoleRef"},
}
VERBS = {"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")

errors = []


def check(value, type_, where):
    if isinstance(type_, list):
        if not isinstance(value, list):
            errors.append("%s: expected a list" % where)
            return
        for i, item in enumerate(value):
            check(item, type_[0], "%s[%d]" % (where, i))
        return
    if type_ == "any":
        return
    if type_ == "str":
        if not isinstance(value, str):
            errors.append("%s: expected a string, got %r" % (where, value))
        return
    if type_ == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append("%s: expected an integer, got %r" % (where, value))
        return
    if type_ == "bool":
        if not isinstance(value, bool):
            errors.append("%s: expected a boolean, got %r" % (where, value))
        return
    if type_ == "map":
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            errors.append("%s: expected a map of strings to strings" % where)
        return
    if type_ == "quantity":
        if not QUANTITY.match(str(value)):
            errors.append("%s: not a quantity: %r" % (where, value))
        return
    fields = TYPES[type_]
    if not isinstance(value, dict):
        errors.append("%s: expected an object (%s)" % (where, type_))
        return
    for key, sub in value.items():
        if key not in fields:
            errors.append("%s: %s has no field '%s'" % (where, type_, key))
            continue
        check(sub, fields[key], "%s.%s" % (where, key))


def check_pod(spec, where, config_maps):
    volumes = {v.get("name"): v for v in spec.get("volumes", [])}
    containers = spec.get("initContainers", []) + spec.get("containers", [])
    names = [c.get("name") for c in containers]
    if len(set(names)) != len(names):
        errors.append("%s: container names are not unique: %s" % (where, names))
    for c in containers:
        cw = "%s.containers[%s]" % (where, c.get("name"))
        for m in c.get("volumeMounts", []):
            if m.get("name") not in volumes:
                errors.append("%s: volumeMount '%s' names no volume" % (cw, m.get("name")))
        defined = set()
        for e in c.get("env", []):
            for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
                if ref not in defined:
                    errors.append("%s: env %s uses $(%s) before it is defined"
                                  % (cw, e.get("name"), ref))
            defined.add(e.get("name"))
    for v in volumes.values():
        cm = v.get("configMap")
        if cm and cm.get("name") not in config_maps:
            errors.append("%s: volume '%s' names ConfigMap '%s', not in the examples"
                          % (where, v.get("name"), cm.get("name")))


def main():
    directory = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else None
    docs = []
    for name in sorted(os.listdir(directory)):
        if name.endswith((".yaml", ".yml")):
            with open(os.path.join(directory, name)) as f:
                for i, doc in enumerate(yaml.safe_load_all(f)):
                    if doc is not None:
                        docs.append(("%s#%d" % (name, i), doc))
    if not docs:
        errors.append("%s: no manifests" % directory)
    config_maps = {}
    for where, doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in KINDS:
            errors.append("%s: unknown apiVersion/kind %s" % (where, key))
            continue
        fields = dict(KINDS[key], apiVersion="str", kind="str", metadata="ObjectMeta")
        for field, sub in doc.items():
            if field not in fields:
                errors.append("%s: %s has no field '%s'" % (where, key[1], field))
            else:
                check(sub, fields[field], "%s.%s" % (where, field))
        if key[1] == "ConfigMap":
            config_maps[doc["metadata"]["name"]] = doc.get("data", {})
        if key[1] == "Role":
            for rule in doc.get("rules", []):
                bad = set(rule.get("verbs", [])) - VERBS
                if bad:
                    errors.append("%s: unknown verbs %s" % (where, sorted(bad)))
    for where, doc in docs:
        if doc.get("kind") == "Deployment":
            spec = doc["spec"]
            labels = spec["template"]["metadata"].get("labels", {})
            for k, v in spec["selector"].get("matchLabels", {}).items():
                if labels.get(k) != v:
                    errors.append("%s: selector %s=%s does not match the template" % (where, k, v))
            check_pod(spec["template"]["spec"], where, config_maps)
        elif doc.get("kind") == "Pod":
            check_pod(doc["spec"], where, config_maps)
    for name, data in config_maps.items():
        if "policy.toml" not in data:
            errors.append("ConfigMap %s: no policy.toml key" % name)
        elif out_dir:
            with open(os.path.join(out_dir, name + ".toml"), "w") as f:
                f.write(data["policy.toml"])
    for e in errors:
        print(e)
    print("%d manifests, %d errors" % (len(docs), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
