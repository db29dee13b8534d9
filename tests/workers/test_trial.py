"""The trial on CPU: its result, bit-for-bit resumption, groups, streaming, and data errors."""
from __future__ import annotations

import pytest
import torch

from tests.workers import layouts
from tests.workers.specs import tiny_spec
from workers.checkpoint import load_checkpoint
from workers.data import DatasetError, describe_dataset, index_dataset
from workers.folds import make_split
from workers.result import REPORTED_KEYS
from workers.trial import run_trial


class Interrupted(Exception):
    """Stands for a crash right after a checkpoint was written."""


def test_result_fields(tmp_path):
    spec = tiny_spec("srm", fold=1)
    epochs_seen = []
    result = run_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "ckpt",
                       report=lambda metrics, path: epochs_seen.append((metrics["epoch"], path.is_file())))
    assert epochs_seen == [(1, True), (2, True)]
    assert 0 <= result["top1"] <= result["top5"] <= 100 and result["loss"] > 0
    assert result["params"] > 0 and result["macs"] > 0 and result["images_per_s"] > 0
    assert result["device"].startswith("cpu") and result["peak_memory_mb"] > 0
    assert result["epochs"] == 2 and result["num_train"] == 64 and result["num_eval"] == 16
    assert result["dataset_fingerprint"] == describe_dataset(spec.dataset).fingerprint
    index, _ = index_dataset(spec.dataset)
    assert result["split_hash"] == make_split(index, 5, 1).hash
    assert result["group_top1"] is None and result["extra_evals"] == {}
    assert [h["epoch"] for h in result["history"]] == [1, 2]
    assert {"train_loss", "train_acc", "val_top1", "val_top5", "lr", "images_per_s"} <= set(result["history"][0])
    assert result["content_hash"] == spec.content_hash(result["dataset_fingerprint"])
    assert set(result) == REPORTED_KEYS | {"checkpoint_path"}  # workers/result.py declares exactly these
    # quick protocol: no_weight_decay "none", one group with every tensor: stem conv+BN 3, 9 bottlenecks x
    # (3 convs + 3 BNs) 81, 3 projections x 3 = 9, fc 2, and 9 SRMs x (CFC + BN weight and bias) 27
    tensors = 3 + 9 * 9 + 3 * 3 + 2 + 9 * 3
    assert result["param_groups"] == {"decay": {"weight_decay": 5e-4, "tensors": tensors, "params": result["params"]}}


def test_the_folds_do_not_depend_on_the_trial_seed(tmp_path):
    """Paired tests compare variants on the same held-out samples: fold i is one set for every seed."""
    spec = tiny_spec("baseline", fold=1, seed=3, epochs=1)
    result = run_trial(spec, data_dir=tmp_path, checkpoint_dir=None)
    index, _ = index_dataset(spec.dataset)
    assert result["split_hash"] == make_split(index, 5, 1, seed=0).hash != make_split(index, 5, 1, seed=3).hash


def test_an_iteration_budget_reports_its_epoch_count_with_every_epoch(tmp_path):
    """The driver turns `epochs` into a progress fraction; an iterations budget only knows it here."""
    spec = tiny_spec(epochs=None, iterations=6)  # 64 training images at batch 16: 4 + 2 steps
    reports = []
    result = run_trial(spec, data_dir=tmp_path, checkpoint_dir=None,
                       report=lambda metrics, path: reports.append((metrics["epoch"], metrics["epochs"])))
    assert reports == [(1, 2), (2, 2)]
    assert result["iterations"] == 6 and result["epochs"] == 2


def test_resume_after_a_crash_matches_an_uninterrupted_run_bit_for_bit(tmp_path):
    spec = tiny_spec("se", epochs=3)
    straight = run_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "straight")

    def crash_after_epoch_2(metrics, path):
        if metrics["epoch"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        run_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "crashed", report=crash_after_epoch_2)
    assert load_checkpoint(tmp_path / "crashed")["epoch"] == 2
    resumed = run_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "crashed")
    assert resumed["resumed_from_epoch"] == 2 and straight["resumed_from_epoch"] == 0
    assert (resumed["top1"], resumed["top5"], resumed["loss"]) == (straight["top1"], straight["top5"], straight["loss"])
    keys = ("train_loss", "train_acc", "val_loss", "val_top1", "lr")
    assert [[h[k] for k in keys] for h in resumed["history"]] == [[h[k] for k in keys] for h in straight["history"]]
    finished = run_trial(spec, data_dir=tmp_path, checkpoint_dir=tmp_path / "straight")  # only evaluates
    assert finished["resumed_from_epoch"] == 3 and finished["top1"] == straight["top1"]
    with pytest.raises(ValueError, match="belongs to another trial"):
        run_trial(tiny_spec("srm", epochs=3), data_dir=tmp_path, checkpoint_dir=tmp_path / "straight")
    final_a = load_checkpoint(tmp_path / "straight")["model"]
    final_b = load_checkpoint(tmp_path / "crashed")["model"]
    assert all(torch.equal(final_a[name], final_b[name]) for name in final_a)


def test_office_home_reports_accuracy_per_domain(data_dir):
    layouts.write_office_home(data_dir, per_class=5)
    spec = tiny_spec(dataset="office_home", n_folds=2, fold=0, epochs=1)
    result = run_trial(spec, data_dir=data_dir, checkpoint_dir=None)
    assert set(result["group_top1"]) == {"Art", "Clipart", "Product", "Real World"}
    assert all(0 <= v <= 100 for v in result["group_top1"].values())


@pytest.mark.parametrize("workers", [0, 1])
def test_streamed_dataset_with_an_extra_evaluation(data_dir, workers):
    """Table 3's setting: train on Stylized-ImageNet, evaluate on its val and on ImageNet's."""
    layouts.write_imagenet_like(data_dir, "imagenet")
    layouts.write_imagenet_like(data_dir, "stylized_imagenet")
    spec = tiny_spec(dataset="stylized_imagenet", fold=None, n_folds=None, epochs=2, batch_size=4,
                     num_workers=workers, eval_datasets=["imagenet"])
    result = run_trial(spec, data_dir=data_dir, checkpoint_dir=None)
    assert result["split"] == "official" and (result["num_train"], result["num_eval"]) == (12, 6)
    assert set(result["extra_evals"]) == {"imagenet"} and result["extra_evals"]["imagenet"]["num_samples"] == 6
    assert [h["epoch"] for h in result["history"]] == [1, 2] and result["iterations"] == 6


def test_corrupt_image_fails_the_trial_naming_the_file(data_dir):
    files = layouts.write_class_tree(data_dir / "mine", ["a", "b"], 5)
    files[7].write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=str(files[7].name)):
        run_trial(tiny_spec(dataset="imagefolder:mine", n_folds=2), data_dir=data_dir, checkpoint_dir=None)
