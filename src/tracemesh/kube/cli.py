"""`tracemesh operator` and `tracemesh manifests`: the Kubernetes commands."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from typing import Any

from tracemesh.kube.jaeger_options import go_duration_seconds

COMMANDS = {
    "operator": "run Jaeger resources as tracemesh roles on Kubernetes; inject agents",
    "manifests": "print what a cluster needs for the operator (kubectl apply -f -)",
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


def add_parsers(sub: Any) -> None:
    env = os.environ
    op = sub.add_parser(
        "operator",
        help=COMMANDS["operator"],
        description=OPERATOR_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    op.add_argument(
        "--kubeconfig",
        default=env.get("KUBECONFIG", ""),
        help="kubeconfig file (default: in-cluster service account)",
    )
    op.add_argument(
        "--namespace",
        default=env.get("POD_NAMESPACE", "tracemesh"),
        help="the operator's own namespace (env POD_NAMESPACE)",
    )
    op.add_argument(
        "--watch-namespace",
        default=env.get("WATCH_NAMESPACE", ""),
        help="namespaces to watch, comma-separated; empty for all (env WATCH_NAMESPACE)",
    )
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
    op.add_argument("--log-level", default="info")

    man = sub.add_parser("manifests", help=COMMANDS["manifests"], description=COMMANDS["manifests"])
    man.add_argument("--namespace", default="tracemesh", help="where the operator runs")
    man.add_argument("--image", default=DEFAULT_IMAGE, help="the operator's (and Pods') image")
    man.add_argument(
        "--watch-namespace",
        default="",
        help="namespaces to watch, comma-separated; empty: cluster-wide RBAC",
    )
    man.add_argument(
        "--webhook-url",
        default="",
        help="an operator run outside the cluster: the webhook's base URL "
        "(no operator Deployment is printed)",
    )


def run(args: argparse.Namespace) -> int:
    if args.command == "manifests":
        from tracemesh.kube.manifests import Install, objects, to_yaml

        install = Install(
            namespace=args.namespace,
            image=args.image,
            watch_namespaces=_namespaces(args.watch_namespace),
            webhook_url=args.webhook_url,
        )
        print(to_yaml(objects(install)), end="")
        return 0
    return _operator(args)


def _operator(args: argparse.Namespace) -> int:
    from tracemesh.kube.operator import Operator, Settings
    from tracemesh.runtime.lifecycle import run_until_signalled

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
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
