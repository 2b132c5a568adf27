"""Kubernetes YAML: the guarded loader (manifests), kube generate's objects (generate), and kube
play's plan (play), which the engine makes real with its own verbs."""
