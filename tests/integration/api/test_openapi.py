"""The API documents itself: Swagger UI at /api/docs, OpenAPI at /api/openapi.json."""

from __future__ import annotations

import re

from tests.html import page

#: Every route of the original's API table (fglab-original.md), as OpenAPI paths.
TABLE = {
    ("post", "/api/v1/projects/schema"),
    ("get", "/api/v1/projects"),
    ("get", "/api/v1/projects/{project_id}"),
    ("get", "/api/v1/projects/{project_id}/experiments"),
    ("delete", "/api/v1/projects/{project_id}/experiments"),
    ("delete", "/api/v1/projects/{project_id}/experiments/files"),
    ("post", "/api/v1/projects/{project_id}/experiment"),
    ("post", "/api/v1/projects/{project_id}/batch"),
    ("get", "/api/v1/experiments"),
    ("get", "/api/v1/experiments/{experiment_id}"),
    ("put", "/api/v1/experiments/{experiment_id}"),
    ("delete", "/api/v1/experiments/{experiment_id}"),
    ("put", "/api/v1/experiments/{experiment_id}/started"),
    ("put", "/api/v1/experiments/{experiment_id}/finished"),
    ("put", "/api/v1/experiments/{experiment_id}/files"),
    ("delete", "/api/v1/experiments/{experiment_id}/files"),
    ("get", "/api/v1/machines"),
    ("get", "/api/v1/machines/{machine_id}"),
    ("post", "/api/v1/machines"),
    ("post", "/api/v1/machines/{machine_id}/projects"),
    ("get", "/api/v1/files/{file_id}"),
    ("post", "/api/v1/webhooks"),
}

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


def _operations(spec: dict) -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in spec["paths"].items()
        for method in item
        if method in METHODS
    }


def test_docs_page_loads(client) -> None:
    response = client.get("/api/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    docs = page(response)
    assert docs.find("script", src=re.compile(r"swagger-ui-bundle\.js$")) is not None
    inline = [script.get_text() for script in docs.find_all("script") if not script.get("src")]
    assert any('"/api/openapi.json"' in source for source in inline)


def test_openapi_lists_every_route_of_the_table(client) -> None:
    response = client.get("/api/openapi.json")

    assert response.status_code == 200
    spec = response.get_json()
    assert spec["info"]["title"] == "FGLab"
    operations = _operations(spec)
    assert operations >= TABLE, f"missing: {sorted(TABLE - operations)}"
    # Routes beyond the table (added by later issues) stay under /api/v1.
    assert all(path.startswith("/api/v1/") for _, path in operations)


def test_every_operation_has_a_summary_for_api_users(client) -> None:
    spec = client.get("/api/openapi.json").get_json()

    for method, path in _operations(spec):
        assert spec["paths"][path][method].get("summary"), (method, path)


def test_every_table_route_answers_in_the_app(app) -> None:
    """The spec is not just paper: each route is wired in Flask's URL map."""
    rules = {
        (method.lower(), rule.rule.replace("<", "{").replace(">", "}"))
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
    }

    assert rules >= TABLE


def test_docs_page_and_charts_use_assets_shipped_with_fglab(client):
    """No CDN: the docs page and the charts work on a network without internet."""
    head = page(client.get("/api/docs")).head
    links = [tag[name] for tag in head.find_all(True) for name in ("href", "src") if tag.get(name)]
    assert links and not [link for link in links if link.startswith("https://")]
    assert "https://" not in head.get_text()
    for path in (
        "/assets/vendor/swagger-ui/swagger-ui-bundle.js",
        "/assets/vendor/swagger-ui/swagger-ui.css",
        "/assets/vendor/d3.min.js",
        "/assets/vendor/c3.min.js",
        "/assets/vendor/c3.min.css",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert len(answer.data) > 1000
        answer.close()
    for module in ("main.js", "charts.js", "experiment.js", "sweep.js", "compare.js"):
        script = client.get(f"/assets/js/{module}")
        assert script.status_code == 200, module
        assert "cdn." not in script.get_data(as_text=True)
        script.close()
