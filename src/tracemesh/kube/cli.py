"""`tracemesh operator` and `tracemesh manifests`: the Kubernetes commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from tracemesh.kube.jaeger_options import go_duration_seconds

COMMANDS = {
    "operator": "run Jaeger resources as tracemesh roles on Kubernetes; inject agents and sidecars",
    "manifests": "print what a cluster needs for the operator (kubectl apply -f -)",
    "kube-inject": "add the mesh sidecar to the workloads of a YAML file (as istioctl kube-inject)",
    "control": "the mesh's control plane: Istio routing resources -> tables for the proxies",
}
DEFAULT_IMAGE = "tracemesh/tracemesh:latest"

OPERATOR_HELP = """\
Watch `jaegertracing.io/v1` Jaeger resources and run each as tracemesh Deployments, Services, a
sampling ConfigMap, an Ingress and an agent DaemonSet; answer the mutating webhook that injects
an agent beside Deployments annotated sidecar.jaegertracing.io/inject. WATCH_NAMESPACE (empty:
the whole cluster; or a comma-separated list) and POD_NAMESPACE are read as Jaeger's operator
reads them. Outside a cluster, --kubeconfig (or KUBECONFIG) says where the API server is.
"""


def _namespaces(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _cluster_arguments(parser: argparse.ArgumentParser, namespace_help: str) -> None:
    """What the long-running commands share: where the API server is, their own namespace and
    the namespaces they watch, read from the variables Jaeger's operator reads."""
    env = os.environ
    parser.add_argument(
        "--kubeconfig",
        default=env.get("KUBECONFIG", ""),
        help="kubeconfig file (default: in-cluster service account)",
    )
    parser.add_argument(
        "--namespace",
        default=env.get("POD_NAMESPACE", "tracemesh"),
        help=f"{namespace_help} (env POD_NAMESPACE)",
    )
    parser.add_argument(
        "--watch-namespace",
        default=env.get("WATCH_NAMESPACE", ""),
        help="namespaces to watch, comma-separated; empty for all (env WATCH_NAMESPACE)",
    )
    parser.add_argument("--log-level", default="info")


def add_parsers(sub: Any) -> None:
    env = os.environ
    op = sub.add_parser(
        "operator",
        help=COMMANDS["operator"],
        description=OPERATOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _cluster_arguments(op, "the operator's own namespace")
    op.add_argument(
        "--image",
        default=env.get("TRACEMESH_IMAGE", DEFAULT_IMAGE),
        help="image of the Pods it creates, and that replaces Jaeger's images",
    )
    op.add_argument("--host", default="0.0.0.0", help="address the webhook and admin bind")
    op.add_argument("--webhook.port", dest="webhook_port", type=int, default=9443)
    op.add_argument(
        "--webhook.service",
        dest="webhook_service",
        default="tracemesh-operator-webhook",
        help="the webhook's Service name",
    )
    op.add_argument(
        "--webhook.configuration",
        dest="webhook_configuration",
        default="tracemesh-operator",
        help="MutatingWebhookConfiguration whose caBundle the operator keeps",
    )
    op.add_argument(
        "--webhook.host",
        dest="webhook_hosts",
        action="append",
        default=[],
        help="another name or IP for the webhook certificate (repeatable)",
    )
    op.add_argument(
        "--webhook.cert-validity",
        dest="cert_validity",
        default="8760h",
        help="serving certificate lifetime, renewed at two thirds (Go duration)",
    )
    op.add_argument(
        "--webhook.cert-check-interval",
        dest="cert_check_interval",
        default="30s",
        help="how often the certificate and the caBundle are checked",
    )
    op.add_argument(
        "--admin.http-port", dest="admin_port", type=int, default=8383, help="/health and /metrics"
    )
    op.add_argument(
        "--resync-interval", default="5m", help="every resource is reconciled at least this often"
    )
    op.add_argument("--workers", type=int, default=4, help="resources reconciled at once")
    op.add_argument(
        "--mesh.collector",
        dest="mesh_collector",
        default="jaeger-collector.istio-system.svc:4317",
        help="where injected sidecars report when no Jaeger instance is found for "
        "their namespace (host:port, OTLP/gRPC)",
    )
    op.add_argument(
        "--mesh.sampling",
        dest="mesh_sampling",
        type=float,
        default=100.0,
        help="percentage of new traces injected sidecars record",
    )

    man = sub.add_parser("manifests", help=COMMANDS["manifests"], description=COMMANDS["manifests"])
    man.add_argument("--namespace", default="tracemesh", help="where the operator runs")
    man.add_argument("--image", default=DEFAULT_IMAGE, help="the operator's (and Pods') image")
    man.add_argument(
        "--watch-namespace",
        default="",
        help="namespaces to watch, comma-separated; empty: cluster-wide RBAC",
    )
    man.add_argument(
        "--without-istio-crds",
        action="store_true",
        help="leave out Istio's VirtualService, DestinationRule and Gateway CRDs "
        "(a cluster with Istio has them)",
    )
    man.add_argument(
        "--webhook-url",
        default="",
        help="an operator run outside the cluster: the webhook's base URL "
        "(no operator Deployment is printed)",
    )

    inject = sub.add_parser(
        "kube-inject",
        help=COMMANDS["kube-inject"],
        description=COMMANDS["kube-inject"] + ": Deployments, StatefulSets, "
        "DaemonSets, ReplicaSets, Jobs and Pods get the proxy and its iptables "
        'init container unless annotated sidecar.istio.io/inject: "false"; '
        "the rest passes unchanged.",
    )
    inject.add_argument("-f", "--filename", required=True, help="YAML file, or - for stdin")
    inject.add_argument("--image", default=DEFAULT_IMAGE, help="the proxy's image")
    inject.add_argument(
        "--collector",
        default="jaeger-collector.istio-system.svc:4317",
        help="where the proxies report spans (host:port, OTLP/gRPC)",
    )
    inject.add_argument(
        "--sampling", type=float, default=100.0, help="percentage of new traces recorded"
    )
    inject.add_argument(
        "--namespace",
        default="default",
        help="namespace of objects that name none (their spans' namespace)",
    )

    control = sub.add_parser(
        "control",
        help=COMMANDS["control"],
        description=COMMANDS["control"] + ". Proxies started with "
        "--control http://<this>:15010 follow their namespace's tables.",
    )
    _cluster_arguments(control, "where the mesh settings ConfigMap (tracemesh-mesh) lives")
    control.add_argument("--host", default="0.0.0.0")
    control.add_argument("--port", type=int, default=15010, help="the proxies' config port")
    control.add_argument("--admin.http-port", dest="admin_port", type=int, default=15014)


def run(args: argparse.Namespace) -> int:
    if args.command == "manifests":
        from tracemesh.kube.manifests import Install, objects, to_yaml

        install = Install(
            istio_crds=not args.without_istio_crds,
            namespace=args.namespace,
            image=args.image,
            watch_namespaces=_namespaces(args.watch_namespace),
            webhook_url=args.webhook_url,
        )
        print(to_yaml(objects(install)), end="")
        return 0
    if args.command == "kube-inject":
        return _kube_inject(args)
    if args.command == "control":
        return _control(args)
    return _operator(args)


def _control(args: argparse.Namespace) -> int:
    from tracemesh.kube.control import ControlPlane, ControlSettings
    from tracemesh.runtime.lifecycle import run_until_signalled

    _logging(args.log_level)
    settings = ControlSettings(
        namespace=args.namespace,
        watch_namespaces=_namespaces(args.watch_namespace),
        kubeconfig=args.kubeconfig,
        host=args.host,
        port=args.port,
        admin_port=args.admin_port,
    )
    try:
        asyncio.run(run_until_signalled(ControlPlane(settings), lambda: "tracemesh control is up"))
    except (OSError, ValueError) as exc:
        logging.getLogger("tracemesh").error("%s", exc)
        return 1
    return 0


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("uvicorn.error", "httpx2", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _kube_inject(args: argparse.Namespace) -> int:
    import sys

    import yaml

    from tracemesh.kube.sidecar_injection import ProxySettings, kube_inject

    try:
        text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
        settings = ProxySettings(image=args.image, collector=args.collector, sampling=args.sampling)
        injected = kube_inject(documents, settings, args.namespace)
    except (OSError, yaml.YAMLError, ValueError) as exc:
        print(f"tracemesh kube-inject: {exc}", file=sys.stderr)
        return 1
    print(yaml.safe_dump_all(injected, sort_keys=False), end="")
    return 0


def _operator(args: argparse.Namespace) -> int:
    from tracemesh.kube.operator import Operator, Settings
    from tracemesh.runtime.lifecycle import run_until_signalled

    _logging(args.log_level)
    try:
        settings = Settings(
            namespace=args.namespace,
            watch_namespaces=_namespaces(args.watch_namespace),
            image=args.image,
            kubeconfig=args.kubeconfig,
            host=args.host,
            webhook_port=args.webhook_port,
            webhook_service=args.webhook_service,
            webhook_configuration=args.webhook_configuration,
            webhook_hosts=args.webhook_hosts,
            cert_validity=go_duration_seconds(args.cert_validity),
            cert_check_interval=go_duration_seconds(args.cert_check_interval),
            admin_port=args.admin_port,
            resync_interval=go_duration_seconds(args.resync_interval),
            workers=max(1, args.workers),
            mesh_collector=args.mesh_collector,
            mesh_sampling=args.mesh_sampling,
        )
        scope = ", ".join(settings.watch_namespaces) or "every namespace"
        asyncio.run(
            run_until_signalled(
                Operator(settings), lambda: f"tracemesh operator is up (watching {scope})"
            )
        )
    except (OSError, ValueError) as exc:
        logging.getLogger("tracemesh").error("%s", exc)
        return 1
    return 0
