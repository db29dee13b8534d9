"""Style-transfer job requests over REST: what is accepted, and each refusal a 422 naming its field."""
from __future__ import annotations

import pytest
import torch

CONTENT = "stylized_shapes[n_per_class=4,image_size=16]"


def style_job(**change) -> dict:
    return {"task": "style_transfer", "dataset": CONTENT, "style_image": "generated:waves",
            "perceptual_net": "random", "protocol": "style_quick"} | change


@pytest.fixture()
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    monkeypatch.setenv("SRM_BENCH_DATA_DIR", str(folder))
    return folder


def refused(client, body: dict) -> tuple[list, str]:
    answer = client.post("/v1/jobs", json=body)
    assert answer.status_code == 422, answer.text
    (error,) = answer.json()["detail"][:1]
    return error["loc"], error["msg"]


def test_a_style_job_is_planned_as_variant_times_seed_trials(client, data_dir):
    created = client.post("/v1/jobs", json=style_job())
    assert created.status_code == 201, created.text
    assert created.json()["n_trials"] == 4 * 3  # bn, in, bn+se, bn+srm x seeds 0, 1, 2 (the defaults)
    detail = client.get(f"/v1/jobs/{created.json()['id']}").json()
    assert detail["backbone"] == "transformer_net" and detail["dataset"] == CONTENT
    assert detail["spec"]["task"] == "style_transfer" and detail["spec"]["placement"] == "residual"
    assert sorted({(t["variant"], t["seed"]) for t in detail["trials"]}) == sorted(
        (v, s) for v in ("bn", "in", "bn+se", "bn+srm") for s in (0, 1, 2))
    retry = client.post("/v1/jobs", json=style_job(variants=["in", "bn+srm", "bn+cbam", "bn+ge"], seeds=[4],
                                                   placement="all_norms"))
    assert retry.status_code == 201 and retry.json()["n_trials"] == 4


def test_classification_jobs_are_unchanged(client, data_dir):
    body = {"dataset": "textures[n_per_class=8,image_size=16]", "backbone": "cifar_resnet20",
            "variants": ["baseline", "srm"], "folds": 2, "protocol": "quick"}
    plain = client.post("/v1/jobs", json=body).json()
    explicit = client.post("/v1/jobs", json=body | {"task": "classification"}).json()
    specs = [client.get(f"/v1/jobs/{j['id']}").json()["spec"] for j in (plain, explicit)]
    assert specs[0] == specs[1] and "task" not in specs[0] and "style_image" not in specs[0]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"variants": ["bn", "gn"]}, ["body", "variants", 1], "valid: bn, in, bn+se"),
    ({"variants": ["bn", "bn"]}, ["body", "variants", 1], "listed twice"),
    ({"folds": 5}, ["body", "folds"], "only for classification"),
    ({"backbone": "cifar_resnet20"}, ["body", "backbone"], "only for classification"),
    ({"style_image": "style/missing.jpg"}, ["body", "style_image"], "no style image"),
    ({"style_image": "generated:plaid"}, ["body", "style_image"], "generated:waves"),
    ({"style_image": "../outside.png"}, ["body", "style_image"], "inside the data dir"),
    ({"protocol": "quick"}, ["body", "protocol"], "style_transfer, style_quick"),
    ({"overrides": {"image_size": 30}}, ["body", "overrides", "image_size"], "multiple of 4"),
    ({"dataset": "no_such_set"}, ["body", "dataset"], "unknown dataset"),
    ({"perceptual_net": "vgg16"}, ["body", "perceptual_net"], "weights/vgg16.pth"),
    ({"perceptual_net_path": "weights/vgg16.pth"}, ["body", "perceptual_net_path"], "only for perceptual_net vgg16"),
])
def test_bad_style_requests_name_their_field(client, data_dir, change, field, words):
    loc, message = refused(client, style_job(**change))
    assert loc == field and words in message, message


def test_style_fields_on_a_classification_job_are_refused(client, data_dir):
    body = {"dataset": "textures", "backbone": "cifar_resnet20", "folds": 2}
    for field, value in (("style_image", "generated:waves"), ("perceptual_net", "random"), ("placement", "residual")):
        loc, message = refused(client, body | {field: value})
        assert loc == ["body", field] and "only for style_transfer" in message


def test_content_and_style_files_are_checked(client, data_dir):
    (data_dir / "empty").mkdir()
    (data_dir / "empty" / "notes.txt").write_text("no images here")
    loc, message = refused(client, style_job(dataset="images:empty"))
    assert loc == ["body", "dataset"] and "has no images" in message
    (data_dir / "broken.jpg").write_bytes(b"not a jpeg at all")
    loc, message = refused(client, style_job(style_image="broken.jpg"))
    assert loc == ["body", "style_image"] and "unreadable" in message


def test_perceptual_weights_must_fit_vgg16(client, data_dir):
    from torchvision.models import vgg16

    (data_dir / "weights").mkdir()
    state = {f"features.{k}": v for k, v in vgg16(weights=None).features.state_dict().items()}
    torch.save(state, data_dir / "weights" / "vgg16.pth")
    accepted = client.post("/v1/jobs", json=style_job(perceptual_net="vgg16", variants=["bn"], seeds=[0]))
    assert accepted.status_code == 201, accepted.text
    state["features.10.weight"] = torch.zeros(64, 64, 3, 3)  # conv3_1 needs (256, 128, 3, 3)
    torch.save(state, data_dir / "weights" / "wrong.pth")
    loc, message = refused(client, style_job(perceptual_net="vgg16", perceptual_net_path="weights/wrong.pth"))
    assert loc == ["body", "perceptual_net_path"] and "features.10.weight has shape (64, 64, 3, 3)" in message
    (data_dir / "weights" / "junk.pth").write_bytes(b"junk")
    loc, message = refused(client, style_job(perceptual_net="vgg16", perceptual_net_path="weights/junk.pth"))
    assert loc == ["body", "perceptual_net_path"] and "not a readable torch state dict" in message


def test_style_presets(client, data_dir):
    presets = {p["name"]: p for p in client.get("/v1/presets").json()}
    assert presets["fig5-style-transfer"]["spec"]["perceptual_net"] == "vgg16"
    generated = client.post("/v1/jobs", json={"preset": "style-generated"})
    assert generated.status_code == 201 and generated.json()["n_trials"] == 12
    changed = client.post("/v1/jobs", json={"preset": "style-generated", "variants": ["in", "bn+srm"], "seeds": [0]})
    assert changed.status_code == 201 and changed.json()["n_trials"] == 2
    loc, message = refused(client, {"preset": "fig5-style-transfer"})  # no COCO in this data dir
    assert loc == ["body", "dataset"] and "coco/train2014" in message


def test_what_a_style_job_answers_before_and_besides_its_results(client, sessions, data_dir):
    from sqlalchemy import update

    from service.models import Job

    job_id = client.post("/v1/jobs", json=style_job(variants=["bn", "bn+srm"], seeds=[0, 1])).json()["id"]
    results = client.get(f"/v1/jobs/{job_id}/results").json()
    assert results["task"] == "style_transfer" and [r["n_succeeded"] for r in results["rows"]] == [0, 0]
    assert client.get(f"/v1/jobs/{job_id}/plots/stylized.png").status_code == 409  # nothing trained yet
    assert client.get(f"/v1/jobs/{job_id}/plots/mosaic.png").status_code == 404
    classification = client.post("/v1/jobs", json={"dataset": "textures", "backbone": "cifar_resnet20",
                                                   "folds": 2}).json()["id"]
    answer = client.get(f"/v1/jobs/{classification}/plots/curves.png")
    assert answer.status_code == 404 and "classification job" in answer.json()["detail"]
    plan = client.get(f"/v1/jobs/{job_id}/plan").json()
    assert plan["variants"] == [] and "classification jobs" in plan["note"]
    with sessions() as session:
        session.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
        session.commit()
    refused = client.post(f"/v1/jobs/{job_id}/analyses", json={"kind": "pruning"})
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "kind"]
    boards = client.get("/v1/leaderboard", params={"task": "style_transfer"}).json()
    assert boards == []  # the job has no succeeded trial: nothing to rank
    assert client.get("/v1/leaderboard", params={"task": "regression"}).status_code == 422
