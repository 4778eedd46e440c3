"""frontend, user-service and profile-service: `python -m tracemesh.demos.profile.app ROLE`.

  frontend         GET /profile/{user}  -> user-service /users/{user}
  user-service     GET /users/{user}    -> profile-service /profiles/{user}
  profile-service  GET /profiles/{user}: sleeps PROFILE_DELAY seconds when slow, answers 500
                   when failing (PROFILE_MODE, or per request the `x-demo-fault` header)

Each one copies the tracing headers and `x-demo-fault` to its call; a failed call is a 502.
"""

from __future__ import annotations

import json
import os
import time

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

FAULT = "x-demo-fault"
NEXT = {"frontend": ("user-service:8080", "/users/"), "user-service": ("profile-service:8080",
                                                                      "/profiles/")}  # fmt: skip
PREFIX = {"frontend": "/profile/", "user-service": "/users/", "profile-service": "/profiles/"}


def handler(name: str) -> Handler:
    def handle(request: Request) -> Response:
        if not request.path.startswith(PREFIX[name]):
            return Response(404, f"try {PREFIX[name]}{{user}}\n")
        user = request.path.removeprefix(PREFIX[name])
        headers = {TRACE_ID_HEADER: trace_id(request.headers)}
        if name == "profile-service":
            return profile(request, user)
        service, path = NEXT[name]
        status, body = call(service, path + user, copy_headers(request.headers, (FAULT,)))
        if status != 200:
            return Response(502, {"error": f"{service} answered {status}"}, headers)
        data = json.loads(body)
        data["via"] = [name, *data.get("via", [])]
        return Response(200, data, headers)

    return handle


def profile(request: Request, user: str) -> Response:
    mode = request.headers.get(FAULT) or os.environ.get("PROFILE_MODE", "ok")
    if mode == "slow":
        time.sleep(float(os.environ.get("PROFILE_DELAY", "1.2")))
    if mode == "fail":
        return Response(500, {"error": f"the profile store is down for {user}"})
    return Response(200, {"user": user, "name": user.title(), "plan": "gold", "via": []})


def main() -> None:
    name = role()
    if name not in PREFIX:
        raise SystemExit(f"unknown role {name!r}; one of {', '.join(PREFIX)}")
    serve(handler(name))


if __name__ == "__main__":
    main()
