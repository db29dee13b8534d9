"""The parts of the API contract that are easy to name (schemathesis fuzzes the rest in tests/e2e)."""
from __future__ import annotations

import pytest

from service.result_schemas import JobResults, LeaderboardBoard
from service.results import write_summaries
from tests.service.factories import finished_job

STATUSES = {"400", "401", "403", "404", "409", "422", "429", "503"}


def test_a_huge_offset_is_a_422_naming_the_bound(client):
    response = client.get("/v1/jobs", params={"offset": 59959693861592400986692949884333457408})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]
    assert "less than or equal to 1000000000" in response.json()["detail"][0]["msg"]
    assert client.get("/v1/studies", params={"offset": 10**12}).status_code == 422


def test_a_body_that_is_not_json_is_a_documented_400(client):
    response = client.post("/v1/jobs", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["detail"].startswith("the body is not valid JSON")
    assert "400" in client.get("/openapi.json").json()["paths"]["/v1/jobs"]["post"]["responses"]


def test_dataset_null_without_a_preset_is_invalid_by_schema_and_by_the_app(client):
    schema = client.get("/openapi.json").json()["components"]["schemas"]["JobRequest"]
    assert {"required": ["preset"], "properties": {"preset": {"type": "string"}}} in schema["anyOf"]
    assert {"required": ["dataset", "backbone"],
            "properties": {"dataset": {"type": "string"}, "backbone": {"type": "string"}}} in schema["anyOf"]
    response = client.post("/v1/jobs", json={"dataset": None, "backbone": "cifar_resnet20"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "dataset"]


@pytest.mark.parametrize(("path", "methods"), [("/v1/jobs/abc", "DELETE, GET"), ("/v1/jobs", "GET, POST"),
                                               ("/v1/studies/abc", "DELETE, GET"), ("/v1/leaderboard", "GET")])
def test_405_and_options_list_every_method_of_the_path(client, path, methods):
    for method in ("OPTIONS", "PUT", "PATCH"):
        response = client.request(method, path)
        assert response.status_code == 405 and response.headers["Allow"] == methods
        assert response.json()["detail"] == f"{method} is not allowed on {path}; allowed: {methods}"


def test_every_error_status_is_documented_with_the_one_error_body(client):
    document = client.get("/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            errors = {s: r for s, r in operation["responses"].items() if s in STATUSES}
            expected = {"503"} | ({"401", "422"} if path.startswith("/v1") else set())
            assert expected <= set(errors), (method, path)
            if path != "/healthz":
                assert all(r["content"] == {"application/json": {"schema": error_ref}} for r in errors.values())
    jobs = document["paths"]["/v1/jobs/{job_id}"]
    assert {"403", "404"} <= set(jobs["delete"]["responses"]) and "404" in jobs["get"]["responses"]
    assert "429" in document["paths"]["/v1/jobs"]["post"]["responses"]
    assert document["paths"]["/v1/jobs"]["post"]["responses"]["429"]["headers"]["Retry-After"]
    results = document["paths"]["/v1/jobs/{job_id}/results"]["get"]["responses"]["200"]["content"]
    assert set(results) == {"application/json", "text/csv", "text/markdown"}
    assert results["application/json"]["schema"]["anyOf"] == [{"$ref": "#/components/schemas/JobResults"},
                                                               {"$ref": "#/components/schemas/StyleResults"}]


def test_results_and_leaderboard_bodies_are_what_their_models_say(client, sessions):
    with sessions() as session:
        job = finished_job(session, {"baseline": [70.0, 71.0, 72.0], "srm": [72.0, 73.5, None]}, groups=["a"])
        write_summaries(session, job)
        session.commit()
    body = client.get(f"/v1/jobs/{job.id}/results").json()
    typed = JobResults.model_validate(body)
    assert typed.model_dump(mode="json", exclude_unset=True) == body  # every key declared, none lost
    assert typed.rows[1].gain.verdict in ("better", "equivalent", "worse", "undecided")
    board = client.get("/v1/leaderboard").json()
    assert [LeaderboardBoard.model_validate(b).model_dump(mode="json") for b in board] == board
    assert client.get(f"/v1/jobs/{job.id}/results", params={"format": "csv"}).headers["content-type"].startswith(
        "text/csv")


def test_nul_characters_are_never_a_server_error(client):
    """PostgreSQL text cannot hold NUL: such values are refused or simply match nothing, on both databases."""
    for path in ("/v1/jobs?dataset=%00", "/v1/jobs?submitted_by=a%00", "/v1/jobs/a%00b", "/v1/studies/%00",
                 "/v1/leaderboard?dataset=%00", "/v1/jobs/a%00/results"):
        assert client.get(path).status_code in (200, 404, 422), path
    response = client.post("/v1/jobs", json={"dataset": "textures", "backbone": "cifar_resnet20", "name": "a\x00"})
    assert response.status_code in (201, 422), response.text
