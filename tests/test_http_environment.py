"""The HTTP layer follows the environment: proxies, and the CA certificates to trust.

Each test runs over both transports, against real servers on 127.0.0.1: the proxy is a fake
API that answers proxied (absolute-form) requests; HTTPS uses a certificate made for the test.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

from synthflow.errors import LLMCertificateError
from synthflow.models.llms.openai import OpenAILLM
from tests.helpers import generate
from tests.servers import Reply, Request, fake_api


def completion(request: Request) -> Reply:
    return Reply(
        body={
            "choices": [{"index": 0, "message": {"content": "hi"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1},
        }
    )


def llm(base_url: str) -> OpenAILLM:
    return OpenAILLM(model="m", base_url=base_url, api_key="sk-test", retry_backoff=0.01)


def test_requests_go_through_the_proxy_the_environment_names(
    transport: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_api(completion) as proxy:
        for name in ("HTTP_PROXY", "http_proxy"):
            monkeypatch.setenv(name, proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.setenv(name, "")
        output = generate(llm("http://llm.example.invalid/v1"))

    assert output.generations == ["hi"]
    # A proxy is sent the whole URL; the host itself was never resolved.
    assert proxy.paths() == ["http://llm.example.invalid/v1/chat/completions"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl command)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_trusts_the_ca_that_ssl_cert_file_names(
    transport: str, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = certificate
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with fake_api(completion, tls=server_tls) as api:
        # Not signed by a CA in certifi's bundle: refused, with one line that says what to do,
        # and not retried.
        with pytest.raises(LLMCertificateError, match="point SSL_CERT_FILE at that CA's"):
            generate(llm(f"{api.url}/v1"))
        assert api.connections == 1 and api.requests == []

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        output = generate(llm(f"{api.url}/v1"))

    assert output.generations == ["hi"]
    assert api.paths() == ["/v1/chat/completions"]
