"""The ablation: each step is the article's recipe plus exactly its fixes; the table's figures."""

from __future__ import annotations

import json

import pytest

from seqmnist import ablation
from seqmnist.cli import main
from seqmnist.config import preset_config
from seqmnist.errors import SeqMnistError


def _differences(config) -> dict:
    seed = preset_config("seed").to_dict()
    ours = config.to_dict()
    diff = {k: v for k, v in ours.items() if k != "model" and seed[k] != v}
    diff.update({k: v for k, v in ours["model"].items() if seed["model"][k] != v})
    return diff


def test_each_step_changes_only_its_fixes():
    for name, preset, overrides, _ in ablation.STEPS[:-1]:
        config = ablation.step_config(preset, overrides, epochs=30, seed=0)
        assert _differences(config) == overrides, name
    fixed = ablation.step_config("seed", ablation.STEPS[5][2], epochs=30, seed=0)
    assert fixed.model.readout == "final" and not fixed.model.softmax_output
    assert fixed.normalize and fixed.val_size == 5000 and not fixed.eval_test_every_epoch


def test_run_ablation_tables_every_step_and_reuses_finished_runs(tmp_path, monkeypatch):
    trained = []

    def fake_fit(config, run_dir, **_kwargs):
        trained.append(run_dir)
        acc = 0.9 + 0.01 * (not config.model.softmax_output) + 0.001 * config.seed
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict()))
        summary = {"test_acc": acc}
        (run_dir / "summary.json").write_text(json.dumps(summary))
        return summary

    monkeypatch.setattr(ablation, "fit", fake_fit)
    rows = ablation.run_ablation(tmp_path, epochs=1, seeds=(0, 2), log=lambda _line: None)
    assert len(trained) == 2 * len(ablation.STEPS)
    assert [r["step"] for r in rows] == [s[0] for s in ablation.STEPS]
    assert rows[0]["test_acc"] == pytest.approx([0.9, 0.902])
    assert rows[1]["mean"] == pytest.approx(0.911) and rows[1]["std"] == pytest.approx(
        0.001 * 2**0.5
    )
    table = ablation.format_ablation(rows)
    assert "+1.00 pt" in table and "91.10% ± 0.14%" in table
    again = ablation.run_ablation(tmp_path, epochs=1, seeds=(0, 2), log=lambda _line: None)
    assert len(trained) == 2 * len(ablation.STEPS) and again == rows  # read back, not retrained
    with pytest.raises(SeqMnistError, match="holds a finished run of another recipe"):
        ablation.run_ablation(tmp_path, epochs=2, seeds=(0,), log=lambda _line: None)


def test_ablate_command_refuses_a_bad_seed_count(capsys):
    assert main(["ablate", "--seeds", "0"]) == 1
    assert "--seeds must be an integer from 1 to 20" in capsys.readouterr().err


def test_ablate_command_defaults_to_the_readme_budget(tmp_path, monkeypatch, capsys):
    """`seqmnist ablate` trained on all 55,000-60,000 images by default, while the README calls it
    the same as bench_ablation.py, whose table uses a 10,000-image subset."""
    calls = []

    def fake_run_ablation(out, **kwargs):
        calls.append(kwargs)
        return []

    monkeypatch.setattr(ablation, "run_ablation", fake_run_ablation)
    monkeypatch.setattr(ablation, "format_ablation", lambda rows, markdown=False: "")
    assert main(["ablate", "--out", str(tmp_path)]) == 0
    assert main(["ablate", "--out", str(tmp_path), "--train-size", "0"]) == 0
    assert [c["extra"]["train_size"] for c in calls] == [10_000, 0]
    assert [c["epochs"] for c in calls] == [2, 2] and calls[0]["seeds"] == (0, 1, 2)
