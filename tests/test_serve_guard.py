"""katib serve's guard (``katib.serve._Guard``): web pages, another origin's pages and KServe's
model repository API cannot use or unload the served model; a body over --max-body gets 413
and binary tensors their header does not describe get 400; a request's head and body must
come in time. They share the random example's server (``served``, tests/conftest.py)."""

from __future__ import annotations

import json
import socket
import time

import pytest

from tests._serving import MAX_BODY, one_digit, serving

pytest.importorskip("kserve")
httpx = pytest.importorskip("httpx")
pytest.importorskip("numpy")
pytest.importorskip("sklearn")


def test_web_pages_cannot_use_a_model_served_on_loopback(served):
    """A DNS-rebinding page (its own name, resolved to 127.0.0.1) could read predictions
    and unload the model; another site's page could send it work."""
    body = one_digit()
    rebinding = {"host": "evil.example:8080"}
    assert httpx.get(f"{served.url}/v2/models/random", headers=rebinding).status_code == 403
    assert httpx.post(f"{served.url}/v2/models/random/infer", json=body, headers=rebinding).status_code == 403
    assert httpx.post(f"{served.url}/v2/repository/models/random/unload", headers=rebinding).status_code == 403
    page = {"sec-fetch-site": "cross-site", "content-type": "text/plain"}
    assert httpx.post(f"{served.url}/v2/models/random/infer", content=json.dumps(body), headers=page).status_code == 403
    assert httpx.get(f"{served.url}/v2/models/random/ready").json()["ready"] is True  # still served
    assert httpx.get(f"{served.url}/v2/models/random", headers={"host": "localhost"}).status_code == 200


def test_a_page_of_another_origin_cannot_send_work_or_unload_the_model(served):
    """Any page may POST a form or a "simple" fetch (text/plain) to localhost: one of another
    origin, a page of another port on this machine included, is refused before KServe's routes
    (it unloaded the model: ready and infer then said it did not exist). Reads and requests
    from programs, which send no Origin, are served; so is the server's own origin."""
    infer = f"{served.url}/v2/models/random/infer"
    simple = {"content-type": "text/plain"}
    for origin in ("http://evil.example", "http://127.0.0.1:1", "null"):
        response = httpx.post(infer, content=json.dumps(one_digit()), headers={**simple, "origin": origin})
        assert response.status_code == 403 and "Origin" in response.json()["error"], (origin, response.text)
        response = httpx.post(f"{served.url}/v2/repository/models/random/unload", headers={**simple, "origin": origin})
        assert response.status_code == 403, (origin, response.text)
    assert httpx.post(infer, json=one_digit(), headers={"origin": served.url}).status_code == 200
    assert httpx.get(f"{served.url}/v2/models/random", headers={"origin": "http://evil.example"}).status_code == 200
    assert httpx.get(f"{served.url}/v2/models/random/ready").json() == {"name": "random", "ready": True}


def test_the_model_repository_api_is_not_served(served):
    """KServe's model repository API would unload the server's only model (and load none):
    katib serve serves one, for as long as it runs, and /v2/health/ready says so."""
    for path in ("models/random/load", "models/random/unload", "index"):
        response = httpx.post(f"{served.url}/v2/repository/{path}")
        assert response.status_code == 404 and "one model" in response.json()["error"], (path, response.text)
    assert httpx.get(f"{served.url}/v2/models/random/ready").json() == {"name": "random", "ready": True}
    assert httpx.get(f"{served.url}/v2/health/ready").json() == {"ready": True}
    assert httpx.post(f"{served.url}/v2/models/random/infer", json=one_digit()).status_code == 200


def _padded(body: dict, size: int) -> bytes:
    """``body`` as JSON, padded with spaces to ``size`` bytes."""
    text = json.dumps(body).encode()
    return text + b" " * (size - len(text))


def test_a_body_over_max_body_gets_413(served):
    """A body over --max-body is refused, whether it says its size (refused before it is
    read) or comes in chunks (refused as it passes the limit): a 20 MB body held the whole
    server for 13-24 s. One of exactly the limit is served."""
    infer = f"{served.url}/v2/models/random/infer"
    json_type = {"content-type": "application/json"}

    def chunks(data: bytes):
        for start in range(0, len(data), 4096):
            yield data[start:start + 4096]

    response = httpx.post(infer, content=_padded(one_digit(), MAX_BODY + 1), headers=json_type)
    assert response.status_code == 413, response.text
    assert f"{MAX_BODY + 1} bytes" in response.json()["error"] and "--max-body" in response.json()["error"]
    response = httpx.post(infer, content=chunks(_padded(one_digit(), MAX_BODY + 1)), headers=json_type)
    assert response.status_code == 413 and "--max-body" in response.json()["error"], response.text
    for body in (_padded(one_digit(), MAX_BODY), chunks(_padded(one_digit(), MAX_BODY))):
        response = httpx.post(infer, content=body, headers=json_type)
        assert response.status_code == 200 and response.headers["content-type"] == "application/json", response.text
        assert len(response.json()["outputs"][0]["data"]) == 1
    assert httpx.get(f"{served.url}/v2/health/live").json() == {"live": True}


def _binary(header: dict, data: bytes, header_length: str | None = None) -> tuple[bytes, dict[str, str]]:
    text = json.dumps(header).encode()
    return text + data, {"inference-header-content-length": header_length or str(len(text))}


_TENSOR = {"name": "input-0", "datatype": "FP32", "parameters": {"binary_data_size": 16}}
MALFORMED = {
    "a shape larger than the data": _binary({"inputs": [{**_TENSOR, "shape": [1000000000, 4]}]}, b"\0" * 16),
    "fewer bytes than binary_data_size": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 8),
    "a header without inputs": _binary({"outputs": []}, b"\0" * 16),
    "a header length that is not a number": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 16, "x"),
    "a header length past the body": _binary({"inputs": [{**_TENSOR, "shape": [1, 4]}]}, b"\0" * 16, "100000"),
    "a header that is not JSON": (b"{inputs" + b"\0" * 16, {"inference-header-content-length": "7"}),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_binary_tensors_get_400(served, case):
    """Binary tensors their header does not describe were a 500 ("cannot reshape array of size
    4 into shape (1000000000,4)"), raised while KServe decoded them."""
    body, headers = MALFORMED[case]
    response = httpx.post(f"{served.url}/v2/models/random/infer", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"} and response.json()["error"]


def _closed_within(sock: socket.socket, seconds: float) -> bytes:
    """What the server sends before it closes the connection (a timeout if it does not)."""
    sock.settimeout(seconds)
    got = b""
    while chunk := sock.recv(65536):
        got += chunk
    return got


def test_a_connection_that_never_sends_its_request_or_body_is_let_go(served, tmp_path):
    """uvicorn waits for a request's head, and KServe for a body, without end: a client that
    sent nothing, or a byte now and then, held a connection (and the request) for as long as
    it liked. katib serve has katib server's deadlines (30 s for a head, 120 s for a body),
    shortened here to a second."""
    setup = "import katib._httpguard as deadlines; deadlines.HEADER_SECONDS = deadlines.BODY_SECONDS = 1.0"
    with serving(served.folder, "random", tmp_path, setup) as url:
        port = int(url.rsplit(":", 1)[1])
        for sent in (b"", b"POST /v2/models/random/infer HTTP/1.1\r\nHost: 127"):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(sent)
                started = time.monotonic()
                assert _closed_within(s, 20) == b"", sent
                assert time.monotonic() - started < 15, sent  # the deadline, not the test's patience
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /v2/models/random/infer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\"")
            answer = _closed_within(s, 20)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        assert b'"error"' in answer and b"did not all arrive within 1 seconds" in answer, answer[-300:]
        response = httpx.post(f"{url}/v2/models/random/infer", json=one_digit())  # a request in time is answered
        assert response.status_code == 200 and len(response.json()["outputs"][0]["data"]) == 1, response.text


def test_parts_of_a_request_kserve_would_ignore_or_copy_get_400_naming_them(served):
    """An output asked for 5,000 times was 5,000 copies of the whole answer (a 180 KB
    request, a 50 MB answer); an empty or a second input tensor was a KServe IndexError or
    silently dropped; a v1 body without ``instances`` a KeyError."""
    infer = f"{served.url}/v2/models/random/infer"
    body = one_digit()
    cases = [
        ({**body, "outputs": [{"name": "output-0"}] * 500}, "outputs: each output may be asked for once"),
        ({"inputs": []}, "inputs: a request needs one input tensor"),
        ({"inputs": body["inputs"] * 2}, "inputs: the model takes one tensor (got 2)"),
        ({"inputs": [{**body["inputs"][0], "datatype": "XX"}]}, "inputs[0].datatype: 'XX' is not a tensor type"),
    ]
    for request, message in cases:
        response = httpx.post(infer, json=request)
        assert response.status_code == 400 and message in response.json()["error"], (message, response.text[:300])
    response = httpx.post(f"{served.url}/v1/models/random:predict", json={"rows": [[0.0] * 64]})
    assert response.status_code == 400 and "instances" in response.text, response.text[:300]
    response = httpx.post(infer, json={**body, "outputs": [{"name": "output-0"}]})
    assert response.status_code == 200 and len(response.json()["outputs"]) == 1
    for broken in (b"{" * 1000 + b"}" * 1000, b'{"inputs": \xff}'):  # FastAPI's own 400, as the protocol's error
        response = httpx.post(infer, content=broken, headers={"content-type": "application/json"})
        assert response.status_code == 400 and list(response.json()) == ["error"], response.text
    assert httpx.delete(infer).json() == {"error": "Method Not Allowed"}


def test_served_on_every_address_a_page_of_another_name_cannot_use_it():
    """0.0.0.0 takes loopback's connections too: a DNS-rebinding page (its own name
    resolved to 127.0.0.1) could read predictions. A Host must be a loopback name, an IP
    address or a name given with --allowed-host."""
    from katib.serve import _Guard

    guard = _Guard(None, host="0.0.0.0", max_body=1 << 20, allowed_hosts=["models.lan"])
    scope = {"type": "http", "method": "POST", "path": "/v2/models/m/infer"}
    for host in ("rebind.attacker.example:8080", "models.lan.attacker.example"):
        refusal = guard._refusal(scope, {"host": host})
        assert refusal is not None and refusal[0] == 403 and "--allowed-host" in refusal[1], host
    for host in ("localhost:8080", "127.0.0.1:8080", "192.168.1.20:8080", "[fe80::1]:8080", "MODELS.lan:8080"):
        assert guard._refusal(scope, {"host": host}) is None, host
    loopback = _Guard(None, host="127.0.0.1", max_body=1 << 20)
    assert loopback._refusal(scope, {"host": "192.168.1.20"}) is not None  # on loopback: loopback names only


def test_a_model_name_that_is_not_one_url_segment_is_refused(tmp_path):
    """``--model-name 'team/digits v2?'`` was served as said, at URLs no request could reach,
    while /v2/health/ready said ready."""
    from tests._serving import katib_cli

    result = katib_cli("serve", "exp", "--model-name", "team/digits v2?", "--db", str(tmp_path / "k.db"),
                       cwd=tmp_path, timeout=60)
    assert result.returncode != 0 and "--model-name 'team/digits v2?' must be letters, digits" in result.stderr, \
        result.stderr[-500:]
