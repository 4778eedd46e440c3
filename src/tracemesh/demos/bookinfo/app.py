"""Bookinfo's four services: `python -m tracemesh.demos.bookinfo.app ROLE`.

  productpage  GET /productpage -> details /details/0 and reviews /reviews/0, shown as text;
               GET /api/v1/products -> the product list
  details      GET /details/{id}
  reviews      GET /reviews/{id}; with ENABLE_RATINGS=true it calls ratings /ratings/{id}
               and shows STAR_COLOR stars (v2 black, v3 red)
  ratings      GET /ratings/{id}

Every service forwards the headers Bookinfo's do (`getForwardHeaders`): tracing, `end-user`,
`user-agent`, `cookie`, `authorization`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

from tracemesh.demos.app_kit import (
    TRACE_ID_HEADER,
    Handler,
    Request,
    Response,
    call,
    copy_headers,
    role,
    serve,
    trace_id,
)

FORWARD = ("traceparent", "tracestate", "end-user", "user-agent", "cookie", "authorization")
PRODUCT = {"id": 0, "title": "The Comedy of Errors", "author": "William Shakespeare"}


def forward(headers: Mapping[str, str]) -> dict[str, str]:
    return copy_headers(headers, FORWARD)


def productpage(request: Request) -> Response:
    if request.path == "/api/v1/products":
        return Response(body={"products": [PRODUCT]})
    if request.path != "/productpage":
        return Response(404, "try /productpage\n")
    headers = forward(request.headers)
    details_status, details = call("details:9080", "/details/0", headers, timeout=3)
    reviews_status, reviews = call("reviews:9080", "/reviews/0", headers, timeout=3)
    lines = [f"{PRODUCT['title']} by {PRODUCT['author']}"]
    if details_status == 200:
        info = json.loads(details)
        lines.append(f"  {info['type']}, {info['pages']} pages, {info['publisher']}")
    else:
        lines.append(f"  (details are unavailable: {details_status})")
    if reviews_status == 200:
        data = json.loads(reviews)
        lines.append(f"  reviews served by reviews-{data['version']}:")
        for review in data["reviews"]:
            rating = review.get("rating")
            stars = f" {'*' * rating['stars']} ({rating['color']})" if rating else ""
            lines.append(f"    {review['reviewer']}: {review['text']}{stars}")
    else:
        lines.append(f"  (reviews are unavailable: {reviews_status})")
    return Response(body="\n".join(lines) + "\n",
                    headers={TRACE_ID_HEADER: trace_id(request.headers)})  # fmt: skip


def details(request: Request) -> Response:
    if not request.path.startswith("/details/"):
        return Response(404, "try /details/{id}\n")
    return Response(body={"id": 0, "type": "paperback", "pages": 200,
                          "publisher": "PublisherA", "language": "English"})  # fmt: skip


REVIEWS = (
    ("Reviewer1", "An extremely entertaining play by Shakespeare.", 5),
    ("Reviewer2", "Absolutely fun and entertaining.", 4),
)


def reviews(request: Request) -> Response:
    if not request.path.startswith("/reviews/"):
        return Response(404, "try /reviews/{id}\n")
    version = os.environ.get("TRACEMESH_VERSION", "v1")
    out: list[dict[str, object]] = [{"reviewer": r, "text": t} for r, t, _ in REVIEWS]
    if os.environ.get("ENABLE_RATINGS") == "true":
        status, body = call(
            "ratings:9080",
            "/ratings/0",
            forward(request.headers),
            timeout=10 if os.environ.get("STAR_COLOR") == "black" else 2.5,
        )
        ratings = json.loads(body)["ratings"] if status == 200 else {}
        color = os.environ.get("STAR_COLOR", "black")
        for item, (reviewer, _, _) in zip(out, REVIEWS, strict=True):
            if reviewer in ratings:
                item["rating"] = {"stars": ratings[reviewer], "color": color}
    return Response(body={"id": 0, "version": version, "reviews": out})


def ratings(request: Request) -> Response:
    if not request.path.startswith("/ratings/"):
        return Response(404, "try /ratings/{id}\n")
    return Response(body={"id": 0, "ratings": {r: stars for r, _, stars in REVIEWS}})


ROLES: dict[str, Handler] = {
    "productpage": productpage, "details": details, "reviews": reviews, "ratings": ratings,
}  # fmt: skip


def main() -> None:
    name = role()
    if name not in ROLES:
        raise SystemExit(f"unknown role {name!r}; one of {', '.join(ROLES)}")
    serve(ROLES[name])


if __name__ == "__main__":
    main()
