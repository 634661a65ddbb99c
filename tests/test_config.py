"""Presets, overrides, validation messages that name the flag, and the dict round trip."""

from __future__ import annotations

import json

import pytest

from seqmnist.config import (
    PRESETS,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    flag_fields,
    preset_config,
)
from seqmnist.errors import ConfigError


def test_seed_preset_is_the_articles_recipe():
    c = preset_config("seed")
    assert c.preset == "seed"
    assert c.model.cell == "lstm" and c.model.hidden == 64 and c.model.layers == 1
    assert c.model.bidirectional is True
    assert c.model.readout == "last"
    assert c.model.softmax_output is True
    assert c.normalize is False
    assert c.optimizer == "adam" and c.lr == pytest.approx(1e-3)
    assert c.weight_decay == 0.0
    assert c.schedule == "constant"
    assert c.grad_clip == 0.0
    assert c.batch_size == 32
    assert c.epochs == 30
    assert c.val_size == 0
    assert c.eval_test_every_epoch is True


def test_default_preset_fixes_the_articles_flaws():
    c = preset_config("default")
    assert c.preset == "default"
    assert c.model.softmax_output is False  # flaw 1: logits into the loss
    assert c.model.readout == "final"  # flaw 2: both directions' final states
    assert c.val_size > 0 and c.eval_test_every_epoch is False  # flaw 3: select on validation
    assert c.normalize is True
    c.validate()


def test_presets_are_valid_and_independent_copies():
    for name in PRESETS:
        preset_config(name).validate()
    a = preset_config("default")
    a.epochs = 99
    a.model.hidden = 7
    b = preset_config("default")
    assert b.epochs != 99 and b.model.hidden != 7
    assert PRESETS["default"].model.hidden != 7


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*default.*seed"):
        preset_config("nope")


def test_overrides_change_only_the_given_fields():
    base = preset_config("seed")
    c = apply_overrides(
        base, {"epochs": 3, "hidden": 32, "cell": "gru", "lr": 0.01, "batch_size": None}
    )
    assert (c.epochs, c.model.hidden, c.model.cell, c.lr) == (3, 32, "gru", 0.01)
    assert c.batch_size == base.batch_size  # None means "not given"
    assert c.model.readout == "last" and c.model.softmax_output is True  # preset kept
    assert base.epochs == 30 and base.model.hidden == 64  # input untouched


def test_override_of_unknown_field():
    with pytest.raises(ConfigError, match="unknown config field 'colour'"):
        apply_overrides(preset_config("default"), {"colour": "red"})


@pytest.mark.parametrize(
    "field,value,flag",
    [
        ("epochs", 0, "--epochs"),
        ("epochs", 10_001, "--epochs"),
        ("epochs", 2.5, "--epochs"),
        ("epochs", True, "--epochs"),
        ("batch_size", 0, "--batch-size"),
        ("batch_size", -1, "--batch-size"),
        ("batch_size", 65_537, "--batch-size"),
        ("lr", 0.0, "--lr"),
        ("lr", -1e-3, "--lr"),
        ("lr", 11.0, "--lr"),
        ("lr", "0.1", "--lr"),
        ("weight_decay", -0.1, "--weight-decay"),
        ("optimizer", "sgd", "--optimizer"),
        ("schedule", "cosine", "--schedule"),
        ("grad_clip", -1.0, "--grad-clip"),
        ("val_size", -1, "--val-size"),
        ("val_size", 59_001, "--val-size"),
        ("augment_shift", -1, "--augment-shift"),
        ("augment_shift", 9, "--augment-shift"),
        ("seed", -1, "--seed"),
        ("device", "tpu", "--device"),
        ("threads", -1, "--threads"),
        ("amp", "fp8", "--amp"),
        ("hidden", 0, "--hidden"),
        ("hidden", 4097, "--hidden"),
        ("layers", 0, "--layers"),
        ("layers", 17, "--layers"),
        ("cell", "transformer", "--cell"),
        ("readout", "first", "--readout"),
        ("dropout", -0.1, "--dropout"),
        ("dropout", 2.0, "--dropout"),
        ("dropout", 0.96, "--dropout"),
    ],
)
def test_out_of_range_values_name_the_flag(field, value, flag):
    with pytest.raises(ConfigError) as info:
        apply_overrides(preset_config("default"), {field: value})
    message = str(info.value)
    assert message.startswith(flag + " must be"), message
    assert repr(value) in message  # says what it got


def test_boundary_values_are_accepted():
    c = apply_overrides(
        preset_config("default"),
        {
            "epochs": 1,
            "batch_size": 1,
            "val_size": 0,
            "dropout": 0.95,
            "grad_clip": 0.0,
            "threads": 0,
            "hidden": 1,
            "lr": 10.0,
        },
    )
    assert c.model.dropout == 0.95 and c.batch_size == 1


@pytest.mark.parametrize(
    "field,value,flag", [("num_classes", 1, "--num-classes"), ("order", "spiral", "--order")]
)
def test_model_config_validation(field, value, flag):
    with pytest.raises(ConfigError, match=flag):
        ModelConfig(**{field: value}).validate()


def test_a_legacy_model_config_with_input_size_reads_rows():
    legacy = {
        k: v
        for k, v in ModelConfig().__dict__.items()
        if k not in ("order", "pixels_per_step", "permutation_seed")
    }
    legacy["input_size"] = 28
    config = ModelConfig.from_dict(legacy)
    assert config.order == "rows" and config.steps == 28 and config.features_per_step == 28
    with pytest.raises(ConfigError, match="input_size must be 28"):
        ModelConfig.from_dict({**legacy, "input_size": 14})


def test_a_config_written_before_rotations_existed_keeps_its_shift_only_recipe():
    """The default preset now rotates and zooms; a config.json from before those fields existed
    ran shifts only, and a resume of it must train exactly as it did."""
    old = {k: v for k, v in preset_config("default").to_dict().items() if "augment_" not in k}
    old["augment_shift"] = 2
    config = TrainConfig.from_dict(old)
    assert (config.augment_shift, config.augment_rotate, config.augment_scale) == (2, 0.0, 0.0)
    new = preset_config("default")
    assert (new.augment_shift, new.augment_rotate, new.augment_scale) == (2, 10.0, 0.1)
    assert all(PRESETS[p].augment_rotate == 0.0 for p in ("seed", "smnist", "pmnist"))


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            {"pixels_per_step": 5},
            "--pixels-per-step must divide 784: one of 1, 2, 4, 7, 8, 14, 16, 28",
        ),
        ({"order": "rows", "pixels_per_step": 4}, "--order rows reads 28 pixels a step"),
        (
            {"order": "permuted", "permutation_seed": 2**32},
            "--permutation-seed must be an integer from 0",
        ),
    ],
)
def test_reading_order_values_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(preset_config("default"), overrides)


@pytest.mark.parametrize("name", list(PRESETS))
def test_dict_round_trip_through_json(name):
    c = apply_overrides(preset_config(name), {"hidden": 12, "dropout": 0.25, "seed": 7})
    again = TrainConfig.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert isinstance(again.model, ModelConfig)
    assert again.to_dict() == c.to_dict()


def test_from_dict_refuses_unknown_keys():
    d = preset_config("default").to_dict()
    d["colour"] = "red"
    with pytest.raises(ConfigError, match="unknown train config field.*colour"):
        TrainConfig.from_dict(d)
    d = preset_config("default").to_dict()
    d["model"]["heads"] = 4
    with pytest.raises(ConfigError, match="unknown model config field.*heads"):
        TrainConfig.from_dict(d)


def test_from_dict_does_not_modify_its_input():
    d = preset_config("default").to_dict()
    before = json.dumps(d, sort_keys=True)
    TrainConfig.from_dict(d)
    assert json.dumps(d, sort_keys=True) == before


def test_every_flag_is_declared_once_with_help_and_a_resume_rule():
    specs = {spec.name: spec for spec in flag_fields()}
    assert "epochs" in specs and "hidden" in specs and "order" in specs
    assert specs["hidden"].owner is ModelConfig and specs["epochs"].owner is TrainConfig
    assert all(spec.help for spec in specs.values())
    assert {name for name, spec in specs.items() if spec.resumable} == {"device", "threads"}
    # fields kept off the command line on purpose
    assert not {"preset", "num_classes", "model"} & set(specs)
    # every fix of the article's recipe can be switched both ways (issue 22)
    assert {"softmax_output", "readout", "normalize", "eval_test_every_epoch"} <= set(specs)


def test_recipe_ignores_only_resumable_fields():
    a = preset_config("default")
    b = apply_overrides(a, {"device": "cpu", "threads": 1})
    assert a.recipe() == b.recipe()
    assert a.recipe() != apply_overrides(a, {"seed": 5}).recipe()
