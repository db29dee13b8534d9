"""The API in-process (no Ray needed): submission, validation errors, 404s, auth, idempotency, listing."""
from __future__ import annotations

import pytest

from tests.service.conftest import TINY_DATASET

SPEC = {"dataset": TINY_DATASET, "backbone": "cifar_resnet20", "variants": ["baseline", "srm"], "folds": 2,
        "overrides": {"iterations": 2}}


def _error(response, field: str) -> str:
    """The message of the 422 entry that names `field` (dotted, without the leading 'body')."""
    assert response.status_code == 422, response.text
    for item in response.json()["detail"]:
        if ".".join(str(p) for p in item["loc"][1:]) == field:
            return item["msg"]
    raise AssertionError(f"no error for {field!r} in {response.json()}")


def test_submit_returns_201_and_expands_trials(client):
    response = client.post("/v1/jobs", json=SPEC | {"seeds": [0, 1]})
    assert response.status_code == 201
    body = response.json()
    assert body["status"] == "queued" and body["n_trials"] == 2 * 2 * 2
    detail = client.get(f"/v1/jobs/{body['id']}").json()
    assert {(t["variant"], t["fold"], t["seed"]) for t in detail["trials"]} == {
        (v, f, s) for v in ("baseline", "srm") for f in (0, 1) for s in (0, 1)}
    assert detail["progress"] == {"total": 8, "finished": 0, "counts": {"queued": 8}, "fraction": 0.0}
    assert all(t["status"] == "queued" and t["attempts"] == 0 for t in detail["trials"])


def test_repeats_multiply_the_trials_keyed_by_repeat_and_fold(client):
    body = client.post("/v1/jobs", json=SPEC | {"repeats": 3, "rope": 1.0}).json()
    assert body["n_trials"] == 2 * 2 * 3
    detail = client.get(f"/v1/jobs/{body['id']}").json()
    assert detail["spec"]["repeats"] == 3 and detail["spec"]["rope"] == 1.0
    assert sorted({(t["repeat"], t["fold"]) for t in detail["trials"]}) == [(r, f) for r in range(3) for f in (0, 1)]
    single = client.get(f"/v1/jobs/{client.post('/v1/jobs', json=SPEC).json()['id']}").json()
    assert {t["repeat"] for t in single["trials"]} == {0}


def test_default_variants_are_baseline_se_ge_srm(client):
    body = client.post("/v1/jobs", json={k: v for k, v in SPEC.items() if k != "variants"}).json()
    variants = [t["variant"] for t in client.get(f"/v1/jobs/{body['id']}").json()["trials"]]
    assert list(dict.fromkeys(variants)) == ["baseline", "se", "ge", "srm"]


def test_every_registered_kind_is_a_variant(client):
    variants = ["baseline", "eca", {"kind": "gct", "eps": 0.001}, "simam", "cbam"]
    body = client.post("/v1/jobs", json=SPEC | {"variants": variants})
    assert body.status_code == 201, body.text
    labels = {t["variant"] for t in client.get(f"/v1/jobs/{body.json()['id']}").json()["trials"]}
    assert labels == {"baseline", "eca", "gct(eps=0.001)", "simam", "cbam"}
    bad = client.post("/v1/jobs", json=SPEC | {"variants": [{"kind": "eca", "kernel_size": 4}]})
    assert "kernel_size=4 is not valid" in _error(bad, "variants.0")


def test_ablation_variants_get_their_own_labels(client):
    variants = ["baseline", {"kind": "srm", "pooling": "avg+max"}, {"kind": "srm", "integration": "mlp"}]
    body = client.post("/v1/jobs", json=SPEC | {"variants": variants}).json()
    labels = {t["variant"] for t in client.get(f"/v1/jobs/{body['id']}").json()["trials"]}
    assert labels == {"baseline", "srm(pooling=avg+max)", "srm(integration=mlp)"}


@pytest.mark.parametrize(("change", "field", "reason"), [
    ({"dataset": "nope"}, "dataset", "unknown dataset 'nope'"),
    ({"backbone": "resnet999"}, "backbone", "unknown backbone 'resnet999'"),
    ({"folds": 1}, "folds", "greater than or equal to 2"),
    ({"dataset": "textures[n_per_class=3]", "folds": 5}, "folds", "smallest class"),
    ({"overrides": {"batch_size": 1}}, "overrides.batch_size", "BatchNorm"),
    ({"dataset": "imagefolder:../../etc"}, "dataset", "outside the data dir"),
    ({"dataset": "imagefolder:/etc"}, "dataset", "outside the data dir"),
    ({"protocol": "fast"}, "protocol", "valid protocols: cifar"),
    ({"overrides": {"epochz": 2}}, "overrides.epochz", "unknown protocol field 'epochz'"),
    ({"variants": [{"kind": "srm", "pooling": "median"}]}, "variants.0", "pooling"),
    ({"variants": ["baseline", "mystery"]}, "variants.1.kind",
     "unknown kind 'mystery'; valid kinds: baseline, se, ge, srm, cbam, eca, gct, simam"),
    ({"variants": ["srm", "srm"]}, "variants.1", "listed twice"),
    ({"folds": None}, "folds", "no official split"),
    ({"seeds": [1, 1]}, "seeds", "distinct"),
    ({"resources": {"cpus": 0}}, "resources.cpus", "greater than 0"),
    ({"dataset": "cifar10", "folds": None}, "dataset", "not on disk"),
    ({"surprise": 1}, "surprise", "Extra inputs are not permitted"),
    ({"repeats": 0}, "repeats", "greater than or equal to 1"),
    ({"repeats": 21}, "repeats", "less than or equal to 20"),
    ({"dataset": "cifar10", "folds": None, "repeats": 2}, "repeats", "official split cannot be repeated"),
    ({"rope": -0.5}, "rope", "greater than or equal to 0"),
])
def test_bad_specs_get_422_naming_field_and_reason(client, change, field, reason):
    assert reason in _error(client.post("/v1/jobs", json=SPEC | change), field)


def test_missing_dataset_says_preset_is_the_alternative(client):
    assert "unless a preset" in _error(client.post("/v1/jobs", json={"backbone": "cifar_resnet20"}), "dataset")


def test_unknown_preset_lists_the_valid_ones(client):
    message = _error(client.post("/v1/jobs", json={"preset": "table9"}), "preset")
    assert "table1-resnet50" in message and "table7-integration" in message


def test_preset_fields_can_be_changed(client):
    body = client.post("/v1/jobs", json={"preset": "demo", "dataset": TINY_DATASET, "folds": 2,
                                         "overrides": {"iterations": 1}}).json()
    detail = client.get(f"/v1/jobs/{body['id']}").json()
    assert detail["spec"]["backbone"] == "cifar_resnet20" and detail["spec"]["name"] == "demo"
    assert body["n_trials"] == 4 * 2


def test_preset_whose_data_is_missing_says_what_it_needs(client):
    assert "not on disk" in _error(client.post("/v1/jobs", json={"preset": "table5-dtd-resnet56"}), "dataset")


@pytest.mark.parametrize("method_path", [("GET", "/v1/jobs/nope"), ("DELETE", "/v1/jobs/nope"),
                                         ("GET", "/v1/jobs/nope/results"), ("GET", "/v1/jobs/nope/report")])
def test_unknown_job_is_404(client, method_path):
    response = client.request(*method_path)
    assert response.status_code == 404
    assert response.json() == {"detail": "no job with id 'nope'"}


def test_bad_query_values_are_422(client):
    assert "status" in str(client.get("/v1/jobs?status=done").json())
    assert client.get("/v1/jobs?limit=0").status_code == 422
    job = client.post("/v1/jobs", json=SPEC).json()
    assert client.get(f"/v1/jobs/{job['id']}/results?format=pdf").status_code == 422


def test_idempotency_key_returns_the_first_job(client):
    first = client.post("/v1/jobs", json=SPEC, headers={"Idempotency-Key": "abc-1"})
    again = client.post("/v1/jobs", json=SPEC, headers={"Idempotency-Key": "abc-1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert client.get("/v1/jobs").json()["total"] == 1
    other = client.post("/v1/jobs", json=SPEC | {"folds": 3}, headers={"Idempotency-Key": "abc-1"})
    assert other.status_code == 409 and "different spec" in other.json()["detail"]


def test_writes_need_the_token_when_one_is_set(client, monkeypatch):
    monkeypatch.setenv("SRM_BENCH_API_TOKEN", "s3cret")
    assert client.post("/v1/jobs", json=SPEC).status_code == 401
    assert client.post("/v1/jobs", json=SPEC, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/v1/jobs", json=SPEC, headers={"Authorization": "Basic s3cret"}).status_code == 401
    created = client.post("/v1/jobs", json=SPEC, headers={"Authorization": "Bearer s3cret"})
    assert created.status_code == 201
    job_id = created.json()["id"]
    assert client.get(f"/v1/jobs/{job_id}").status_code == 200  # reads stay open
    assert client.get("/v1/jobs").status_code == 200
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 401
    cancelled = client.delete(f"/v1/jobs/{job_id}", headers={"Authorization": "Bearer s3cret"})
    assert cancelled.status_code == 200


def test_cancel_a_queued_job_cancels_every_trial(client):
    job_id = client.post("/v1/jobs", json=SPEC).json()["id"]
    detail = client.delete(f"/v1/jobs/{job_id}").json()
    assert detail["status"] == "cancelled" and detail["cancel_requested"]
    assert {t["status"] for t in detail["trials"]} == {"cancelled"}
    assert client.delete(f"/v1/jobs/{job_id}").json()["status"] == "cancelled"  # cancelling twice is harmless


def test_list_filters_and_pages(client):
    ids = [client.post("/v1/jobs", json=SPEC | {"name": f"job{i}"}).json()["id"] for i in range(3)]
    other = client.post("/v1/jobs", json=SPEC | {"dataset": "textures[n_per_class=6,image_size=16]"}).json()["id"]
    client.delete(f"/v1/jobs/{ids[0]}")
    assert client.get("/v1/jobs").json()["total"] == 4
    queued = client.get("/v1/jobs", params={"status": "queued"}).json()
    assert {j["id"] for j in queued["items"]} == {ids[1], ids[2], other}
    by_dataset = client.get("/v1/jobs", params={"dataset": TINY_DATASET}).json()
    assert {j["id"] for j in by_dataset["items"]} == set(ids)
    page = client.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    first_page = client.get("/v1/jobs", params={"limit": 2}).json()
    assert not {j["id"] for j in page["items"]} & {j["id"] for j in first_page["items"]}


def test_catalog_endpoints(client):
    presets = {p["name"]: p for p in client.get("/v1/presets").json()}
    assert {"table1-resnet50", "table2-cifar10", "table3-stylized-imagenet", "table4-office-home",
            "table5-dtd-resnet32", "table6-pooling", "table7-integration"} <= set(presets)
    assert [v if isinstance(v, str) else v["pooling"] for v in presets["table6-pooling"]["spec"]["variants"]] == [
        "baseline", "avg", "std", "max", "avg+max", "avg+std"]
    models = client.get("/v1/models").json()
    assert "cifar_resnet20" in models["backbones"] and "srm_resnet50" in models["models"]
    assert not any(name.startswith(("srm_", "eca_", "gct_", "simam_")) for name in models["backbones"])
    assert {"eca_resnet50", "gct_cifar_resnet56", "simam_resnet18"} <= set(models["models"])
    assert models["variants"][0] == "baseline" and {"eca", "gct", "simam"} <= set(models["variants"])
    kinds = {k["name"]: k for k in models["kinds"]}
    assert kinds["ge"]["needs_feature_size"] and not kinds["eca"]["needs_feature_size"]
    assert kinds["eca"]["options"] == {"kernel_size": None, "gamma": 2, "b": 1}
    assert kinds["simam"]["options"] == {"e_lambda": 1e-4} and kinds["srm"]["plugin"] is None
    datasets = {d["name"]: d for d in client.get("/v1/datasets").json()}
    assert datasets["textures"]["present"] is True and datasets["cifar10"]["present"] is False
    assert datasets["cifar10"]["needs"]
    assert "quick" in client.get("/v1/protocols").json()
    assert client.get("/docs").status_code == 200
    assert "/v1/jobs" in client.get("/openapi.json").json()["paths"]


def test_healthz_reports_each_part(client):
    body = client.get("/healthz").json()
    assert set(body["checks"]) == {"database", "ray", "mlflow"}
    assert body["checks"]["database"]["ok"] is True


def test_unexpected_errors_are_clean_json_500(db_url, srm_home):
    from fastapi.testclient import TestClient

    from service.api import create_app

    app = create_app(db_url)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    with TestClient(app, raise_server_exceptions=False) as test_client:
        response = test_client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error (RuntimeError); the server log has the details"}
    assert "Traceback" not in response.text and "secret" not in response.text


def test_the_started_app_hides_its_startup_objects_from_the_garbage_collector(db_url, srm_home):
    """A full collection walks every tracked object (80-160 ms with torch and scipy loaded): the app
    freezes what it imported, so no request waits behind that walk."""
    import gc

    from fastapi.testclient import TestClient

    from service.api import create_app

    app = create_app(db_url)
    frozen_before = gc.get_freeze_count()
    with TestClient(app):
        assert gc.get_freeze_count() > frozen_before
        assert gc.get_freeze_count() > len(gc.get_objects())  # most of what is alive is frozen
