"""The paper's experiments (Tables 1-7, Figs. 6-8) as ready-made job specs, plus the demos.

A preset is a starting point: any field sent beside `preset` replaces the preset's value
(e.g. `{"preset": "table5-dtd-resnet56", "seeds": [0, 1]}`).
"""
from __future__ import annotations

from typing import Any

from service.errors import SpecError

_BASE4 = ["baseline", "se", "ge", "srm"]
_BASE_SE_SRM = ["baseline", "se", "srm"]

PRESETS: dict[str, dict[str, Any]] = {
    "demo": {
        "paper": "not in the paper: a < 10 min sanity run on 2 CPU cores",
        "description": "baseline/SE/GE/SRM on the generated textures, CIFAR ResNet-20, 5-fold CV, quick protocol",
        "spec": {"dataset": "textures", "backbone": "cifar_resnet20", "variants": _BASE4, "folds": 5,
                 "protocol": "quick"},
    },
    "table1-resnet50": {
        "paper": "Table 1, Figure 3",
        "description": "ImageNet-1K, ResNet-50: baseline/SE/GE/SRM, official train/val split",
        "spec": {"dataset": "imagenet", "backbone": "resnet50", "variants": _BASE4, "folds": None,
                 "protocol": "imagenet", "resources": {"cpus": 8, "gpus": 8}},
    },
    "table1-resnet101": {
        "paper": "Table 1",
        "description": "ImageNet-1K, ResNet-101: baseline/SE/GE/SRM, official train/val split",
        "spec": {"dataset": "imagenet", "backbone": "resnet101", "variants": _BASE4, "folds": None,
                 "protocol": "imagenet", "resources": {"cpus": 8, "gpus": 8}},
    },
    "table2-cifar10": {
        "paper": "Table 2",
        "description": "CIFAR-10, ResNet-56: baseline/SE/GE/SRM, official train/test split",
        "spec": {"dataset": "cifar10", "backbone": "cifar_resnet56", "variants": _BASE4, "folds": None,
                 "protocol": "cifar", "resources": {"cpus": 2, "gpus": 1}},
    },
    "table2-cifar100": {
        "paper": "Table 2",
        "description": "CIFAR-100, ResNet-56: baseline/SE/GE/SRM, official train/test split",
        "spec": {"dataset": "cifar100", "backbone": "cifar_resnet56", "variants": _BASE4, "folds": None,
                 "protocol": "cifar", "resources": {"cpus": 2, "gpus": 1}},
    },
    "table3-stylized-imagenet": {
        "paper": "Table 3",
        "description": "trained on Stylized-ImageNet (evaluated also on ImageNet), ResNet-50: baseline/SE/SRM",
        "spec": {"dataset": "stylized_imagenet", "backbone": "resnet50", "variants": _BASE_SE_SRM,
                 "folds": None, "protocol": "imagenet", "overrides": {"eval_datasets": ["imagenet"]},
                 "resources": {"cpus": 8, "gpus": 8}},
    },
    "table4-office-home": {
        "paper": "Table 4",
        "description": "Office-Home (4 domains pooled, per-domain accuracy), ResNet-18, batch 64: 5-fold CV",
        "spec": {"dataset": "office_home", "backbone": "resnet18", "variants": _BASE_SE_SRM, "folds": 5,
                 "protocol": "office_home", "resources": {"cpus": 4, "gpus": 1}},
    },
    "table5-dtd-resnet32": {
        "paper": "Table 5",
        "description": "DTD, CIFAR-style ResNet-32: baseline/SE/SRM, 5-fold CV, CIFAR protocol on "
                       "Decathlon-style images",
        "spec": {"dataset": "dtd", "backbone": "cifar_resnet32", "variants": _BASE_SE_SRM, "folds": 5,
                 "protocol": "dtd", "resources": {"cpus": 2, "gpus": 1}},
    },
    "table5-dtd-resnet56": {
        "paper": "Table 5, Figures 7-8",
        "description": "DTD, CIFAR-style ResNet-56: baseline/SE/SRM, 5-fold CV, CIFAR protocol on "
                       "Decathlon-style images",
        "spec": {"dataset": "dtd", "backbone": "cifar_resnet56", "variants": _BASE_SE_SRM, "folds": 5,
                 "protocol": "dtd", "resources": {"cpus": 2, "gpus": 1}},
    },
    "table6-pooling": {
        "paper": "Table 6",
        "description": "ImageNet, ResNet-50: style pooling ablation (avg, std, max, avg+max, avg+std)",
        "spec": {"dataset": "imagenet", "backbone": "resnet50", "folds": None, "protocol": "imagenet",
                 "variants": ["baseline"] + [{"kind": "srm", "pooling": p}
                                             for p in ("avg", "std", "max", "avg+max", "avg+std")],
                 "resources": {"cpus": 8, "gpus": 8}},
    },
    "table7-integration": {
        "paper": "Table 7",
        "description": "ImageNet, ResNet-50: style integration ablation (MLP, MLP+BN, CFC, CFC+BN)",
        "spec": {"dataset": "imagenet", "backbone": "resnet50", "folds": None, "protocol": "imagenet",
                 "variants": ["baseline"] + [{"kind": "srm", "integration": i}
                                             for i in ("mlp", "mlp+bn", "cfc", "cfc+bn")],
                 "resources": {"cpus": 8, "gpus": 8}},
    },
    "fig6-pruning-resnet50-imagenet": {
        "paper": "Figure 6",
        "description": "ImageNet, ResNet-50: SE/GE/SRM, then channel pruning by learned weight per stage "
                       "(with the random-order control)",
        "spec": {"dataset": "imagenet", "backbone": "resnet50", "variants": ["se", "ge", "srm"], "folds": None,
                 "protocol": "imagenet", "resources": {"cpus": 8, "gpus": 8},
                 "analyses": [{"kind": "pruning"}]},
    },
    "fig8-correlation-resnet56-dtd": {
        "paper": "Figures 7, 8, 10",
        "description": "DTD, CIFAR-style ResNet-56: SE/SRM, 5-fold CV, then channel-weight correlations and "
                       "top-activated images",
        "spec": {"dataset": "dtd", "backbone": "cifar_resnet56", "variants": ["se", "srm"], "folds": 5,
                 "protocol": "dtd", "resources": {"cpus": 2, "gpus": 1},
                 "analyses": [{"kind": "channel_weights"}]},
    },
    "fig6-pruning-demo": {
        "paper": "Figure 6 on generated data: minutes on a laptop",
        "description": "SE/GE/SRM on the generated textures, CIFAR ResNet-20, 5-fold CV, quick protocol, "
                       "then channel pruning",
        "spec": {"dataset": "textures", "backbone": "cifar_resnet20", "variants": ["se", "ge", "srm"], "folds": 5,
                 "protocol": "quick", "analyses": [{"kind": "pruning"}]},
    },
    "fig8-correlation-demo": {
        "paper": "Figures 7, 8 on generated data: minutes on a laptop",
        "description": "SE/GE/SRM on the generated textures, CIFAR ResNet-20, 5-fold CV, quick protocol, "
                       "then channel-weight correlations",
        "spec": {"dataset": "textures", "backbone": "cifar_resnet20", "variants": ["se", "ge", "srm"], "folds": 5,
                 "protocol": "quick", "analyses": [{"kind": "channel_weights"}]},
    },
    "fig5-style-transfer": {
        "paper": "Section 4.3, Figures 4, 5, 9",
        "description": "style transfer (Johnson et al.'s transformer net, the official PyTorch example's settings): "
                       "BN, IN, BN+SE, BN+SRM on MS-COCO train2014 (data dir: coco/train2014/*.jpg) in the style "
                       "of Rain Princess (data dir: style/rain_princess.jpg), VGG-16 loss net (data dir: "
                       "weights/vgg16.pth), 3 seeds, one GPU per trial",
        "spec": {"task": "style_transfer", "dataset": "images:coco/train2014",
                 "style_image": "style/rain_princess.jpg", "variants": ["bn", "in", "bn+se", "bn+srm"],
                 "seeds": [0, 1, 2], "protocol": "style_transfer", "perceptual_net": "vgg16",
                 "resources": {"cpus": 4, "gpus": 1}},
    },
    "style-generated": {
        "paper": "not in the paper: Sec. 4.3's comparison on generated images, a few minutes on 2 CPU cores",
        "description": "style transfer BN, IN, BN+SE, BN+SRM: 64 generated 32x32 content images (stylized_shapes), "
                       "the generated 'waves' style, a seeded random VGG-16 loss net, 3 seeds, 100 steps",
        "spec": {"task": "style_transfer", "dataset": "stylized_shapes[n_per_class=16]",
                 "style_image": "generated:waves", "variants": ["bn", "in", "bn+se", "bn+srm"], "seeds": [0, 1, 2],
                 "protocol": "style_quick", "overrides": {"steps": 100}, "perceptual_net": "random"},
    },
}


# Studies (POST /v1/studies): one comparison over several datasets, a job per dataset.
STUDY_PRESETS: dict[str, dict[str, Any]] = {
    "study-generated": {
        "paper": "not in the paper: the claim across problems, on generated data (runs on CPU)",
        "description": "baseline/SE/GE/SRM on textures, stylized_shapes and digits, CIFAR ResNet-20, "
                       "5-fold CV x 2 repeats, quick protocol",
        "spec": {"datasets": ["textures", "stylized_shapes", "digits"], "backbone": "cifar_resnet20",
                 "variants": _BASE4, "folds": 5, "repeats": 2, "protocol": "quick"},
    },
    "study-real": {
        "paper": "Tables 2 and 5 as one study",
        "description": "baseline/SE/GE/SRM on DTD, CIFAR-10 and CIFAR-100 from the data dir, CIFAR ResNet-56, "
                       "5-fold CV, CIFAR protocol (32-pixel crops)",
        "spec": {"datasets": ["dtd", "cifar10", "cifar100"], "backbone": "cifar_resnet56", "variants": _BASE4,
                 "folds": 5, "protocol": "cifar", "resources": {"cpus": 2, "gpus": 1}},
    },
}


def list_presets() -> list[dict[str, Any]]:
    return ([{"name": name, "kind": "job"} | preset for name, preset in PRESETS.items()]
            + [{"name": name, "kind": "study"} | preset for name, preset in STUDY_PRESETS.items()])


def _copy(spec: dict[str, Any]) -> dict[str, Any]:
    return {key: (list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value)
            for key, value in spec.items()}


def expand(name: str) -> dict[str, Any]:
    """The preset's spec as a plain dict (a copy: callers may change it)."""
    if name not in PRESETS:
        hint = " (a study preset: POST it to /v1/studies)" if name in STUDY_PRESETS else ""
        raise SpecError("preset", f"unknown preset {name!r}{hint}; valid presets: {', '.join(PRESETS)}")
    return _copy(PRESETS[name]["spec"]) | {"name": name}


def expand_study(name: str) -> dict[str, Any]:
    """A study preset's spec as a plain dict (a copy)."""
    if name not in STUDY_PRESETS:
        raise SpecError("preset", f"unknown study preset {name!r}; valid study presets: {', '.join(STUDY_PRESETS)}")
    return _copy(STUDY_PRESETS[name]["spec"]) | {"name": name}
