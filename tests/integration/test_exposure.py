"""FGLab is not served open by mistake: `fglab web` refuses to listen beyond loopback
without a PASSWORD (unless told to), and with FGLAB_TRUSTED_HOSTS a request naming
another host (a DNS-rebinding page) is refused before anything reads it."""

from __future__ import annotations

import pytest

from fglab.app import create_app
from fglab.cli import main


@pytest.mark.security
def test_fglab_web_refuses_an_open_address_without_a_password(monkeypatch, capsys) -> None:
    monkeypatch.setenv("FGLAB_HOST", "0.0.0.0")
    monkeypatch.delenv("PASSWORD", raising=False)
    monkeypatch.delenv("FGLAB_ALLOW_OPEN", raising=False)

    assert main(["web"]) == 2

    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("fglab: refusing to listen on 0.0.0.0 without a PASSWORD")
    assert "FGLAB_ALLOW_OPEN=true" in err[0]


@pytest.mark.security
def test_a_host_not_trusted_is_refused_a_trusted_one_answers(settings, store) -> None:
    app = create_app(settings.with_changes(trusted_hosts=("lab.example.org",)), store=store)
    client = app.test_client()

    rebound = client.get("/api/v1/projects", headers={"Host": "evil.example.com:5080"})
    assert rebound.status_code == 400
    assert rebound.get_json() == {"error": "Host 'evil.example.com' is not one FGLab answers to"}
    assert client.get("/", headers={"Host": "evil.example.com"}).status_code == 400

    trusted = client.get("/api/v1/projects", headers={"Host": "lab.example.org:5080"})
    assert trusted.status_code == 200
