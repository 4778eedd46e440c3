"""tracemesh on Kubernetes: the `Jaeger` resource, the operator that runs it, agent injection."""
