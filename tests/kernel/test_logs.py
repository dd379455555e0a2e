"""Logs are JSON lines that carry the request id from the HTTP request onwards."""


async def test_an_access_line_names_request_id_user_route_status_and_latency(system, lines):
    system.kernel.access_log_sample = 1.0  # every request (the default samples 1 in 100)
    headers = {**system.headers(username="ops-7"), "X-Request-ID": "req-4711"}
    r = await system.client.get("/registry/v1/org-units", headers=headers)
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-4711"
    [line] = [x for x in lines() if x["logger"] == "frontline.access"]
    assert line["request_id"] == "req-4711" and line["user"] == "ops-7"
    assert line["route"] == "/registry/v1/org-units" and line["status"] == 200
    assert line["method"] == "GET" and line["latency_ms"] >= 0 and line["level"] == "info"


async def test_sampling_leaves_out_successes_but_never_errors(system, lines):
    system.kernel.access_log_sample = 0.0
    await system.client.get("/registry/v1/org-units", headers=system.headers())
    await system.client.get("/registry/v1/org-units")  # no token: 401
    access = [x for x in lines() if x["logger"] == "frontline.access"]
    assert [x["status"] for x in access] == [401]
