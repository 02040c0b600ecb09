import json
import os

import pytest
import torch

from pointnet_kit.engine.checkpoint import load_checkpoint, non_finite_tensors
from pointnet_kit.engine.config import config_from_dict
from pointnet_kit.engine.trainer import bn_momentum_at, is_run_dir, lr_factor, train
from pointnet_kit.errors import ConfigError, DataError, NonFiniteError, PointNetKitError

from .conftest import fast_overrides


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(config_from_dict({}, fast_overrides(tiny_data, epochs=4)), out, log=quiet)
    return out, summary


def test_run_directory_holds_everything(run):
    out, summary = run
    for name in ("config.yaml", "metrics.jsonl", "checkpoint_last.pt", "checkpoint_best.pt", "summary.json"):
        assert (out / name).is_file(), name
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3, 4]
    for key in ("train_loss", "train_acc", "val_oa", "val_macc", "lr", "train_seconds", "shapes_per_s"):
        assert all(key in m for m in lines), key
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))


def test_it_learns_the_tiny_problem(run):
    out, summary = run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["train_loss"] < lines[0]["train_loss"]
    assert summary["best"]["val_oa"] >= 0.9


def test_best_checkpoint_is_chosen_on_validation_and_summary_says_so(run):
    out, summary = run
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    best_epoch = max(lines, key=lambda m: (m["val_oa"], -m["epoch"]))["epoch"]
    assert load_checkpoint(out / "checkpoint_best.pt")["epoch"] == best_epoch == summary["best"]["epoch"]
    assert summary["selected_by"].startswith("val_oa") and "validation" in summary["selected_by"]
    assert summary["oa"] == summary["best"]["val_oa"] and summary["task"] == "classification"
    assert "not used" in summary["splits"]["test"]
    assert summary["splits"]["val"]["shapes"] + summary["splits"]["train"]["shapes"] == 96


def test_checkpoint_is_self_describing(run):
    out, _ = run
    ckpt = load_checkpoint(out / "checkpoint_last.pt")
    assert ckpt["model_name"] == "pointnet"
    assert ckpt["model_kwargs"]["num_classes"] == 3
    assert ckpt["class_names"] == ["stick_x", "stick_z", "blob"]
    assert ckpt["config"]["train"]["epochs"] == 4
    assert ckpt["task"] == "classification"
    assert ckpt["data_spec"]["class_names"] == ckpt["class_names"] and ckpt["data_spec"]["num_points"] == 64
    assert {"optimizer", "scheduler", "rng", "epoch"} <= set(ckpt)


def test_resume_matches_an_uninterrupted_run_bit_for_bit(tiny_data, tmp_path):
    full, part = tmp_path / "full", tmp_path / "part"
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), full, log=quiet)
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=2)), part, log=quiet)
    train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), part, resume=part, log=quiet)
    a, b = load_checkpoint(full / "checkpoint_last.pt"), load_checkpoint(part / "checkpoint_last.pt")
    assert a["epoch"] == b["epoch"] == 3
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    la = [json.loads(x) for x in (full / "metrics.jsonl").read_text().splitlines()]
    lb = [json.loads(x) for x in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["train_loss"] for m in la] == [m["train_loss"] for m in lb]


def test_resume_repairs_a_best_checkpoint_left_behind_by_a_kill(tiny_data, tmp_path):
    """A kill after writing last but before best leaves best one epoch behind; resume rewrites it."""
    import shutil

    config = lambda epochs: config_from_dict({}, fast_overrides(tiny_data, epochs=epochs))  # noqa: E731
    full, part = tmp_path / "full", tmp_path / "part"
    train(config(2), full, log=quiet)
    train(config(1), part, log=quiet)
    stale = tmp_path / "best-epoch-1.pt"
    shutil.copy(part / "checkpoint_best.pt", stale)
    train(config(2), part, resume=part, log=quiet)
    if load_checkpoint(part / "checkpoint_last.pt")["best"]["epoch"] != 2:
        pytest.skip("epoch 2 did not improve on this data; nothing to repair")
    shutil.copy(stale, part / "checkpoint_best.pt")  # what the kill leaves
    (part / ".checkpoint_best.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    (part / "summary.json").unlink()
    train(config(2), part, resume=part, log=quiet)
    assert sorted(p.name for p in part.iterdir()) == sorted(p.name for p in full.iterdir())
    a, b = load_checkpoint(full / "checkpoint_best.pt"), load_checkpoint(part / "checkpoint_best.pt")
    assert a["epoch"] == b["epoch"] == 2 == json.loads((part / "summary.json").read_text())["best"]["epoch"]
    assert all(torch.equal(v, b["model_state"][k]) for k, v in a["model_state"].items())


def test_final_batch_of_one_is_a_clear_error(tiny_data, tmp_path):
    # 72 training shapes (96 minus a quarter for validation) in batches of 71 leave one shape over.
    overrides = fast_overrides(tiny_data) + ["train.batch_size=71", "train.drop_last=false"]
    with pytest.raises(ConfigError, match="BatchNorm"):
        train(config_from_dict({}, overrides), tmp_path, log=quiet)


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DataError):
        train(config_from_dict({}, fast_overrides(tmp_path / "nowhere")), tmp_path / "out", log=quiet)


def test_a_model_of_another_task_is_refused(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="'pointnet_seg' is a part_segmentation model but the data .* is for classification"):
        train(config_from_dict({}, fast_overrides(tiny_data) + ["model.name=pointnet_seg"]), tmp_path, log=quiet)


def test_select_metric_must_be_the_tasks(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="val_instance_miou.*use one of val_oa, val_macc"):
        train(config_from_dict({}, fast_overrides(tiny_data) + ["train.select_metric=val_instance_miou"]), tmp_path, log=quiet)


def test_paper_schedules():
    config = config_from_dict({}, ["optim.lr=0.001", "schedule.name=step", "schedule.step_size=20", "schedule.gamma=0.7"])
    assert lr_factor(config, 0) == 1.0 and lr_factor(config, 19) == 1.0
    assert lr_factor(config, 20) == pytest.approx(0.7) and lr_factor(config, 45) == pytest.approx(0.49)
    assert lr_factor(config, 10_000) == pytest.approx(1e-5 / 1e-3)  # floored at min_lr
    config = config_from_dict({}, ["train.bn_momentum=0.5", "train.bn_momentum_step=20"])
    assert [bn_momentum_at(config, e) for e in (0, 20, 40)] == [0.5, 0.25, 0.125]
    assert bn_momentum_at(config, 1000) == 0.01
    cosine = config_from_dict({}, ["schedule.name=cosine", "train.epochs=10", "schedule.min_lr=0.0"])
    assert lr_factor(cosine, 0) == 1.0 and lr_factor(cosine, 5) == pytest.approx(0.5)


@pytest.mark.gpu
def test_cuda_run_with_bf16_autocast(tiny_data, tmp_path):
    summary = train(config_from_dict({}, fast_overrides(tiny_data) + ["runtime.device=cuda", "runtime.amp=bf16"]), tmp_path, log=quiet)
    assert summary["device"].startswith("cuda")
    assert load_checkpoint(tmp_path / "checkpoint_last.pt")["model_state"]["head.7.weight"].dtype == torch.float32


@pytest.mark.slow
def test_a_short_run_on_real_modelnet40_learns(shared_data, tmp_path):
    """Two epochs at 128 points on the real ModelNet40 training split (minutes on 2 cores)."""
    overrides = [
        f"data.root={shared_data / 'modelnet40_ply_hdf5_1024'}",
        "data.num_points=128",
        "train.epochs=2",
        "runtime.device=cpu",
        "runtime.progress=false",
        "runtime.tensorboard=false",
    ]
    summary = train(config_from_dict({}, overrides), tmp_path, log=quiet)
    assert summary["classes"] == 40 and summary["splits"]["val"]["shapes"] == 985
    assert summary["best"]["val_oa"] > 0.3  # chance is 0.025; the paper's model gets ~0.5 after one epoch


def _nan_from_call(monkeypatch, first_bad: int) -> None:
    """Make the classification loss NaN from its ``first_bad``-th call (1-based) on."""
    from pointnet_kit.tasks.classification import ClassificationTask

    real, calls = ClassificationTask.loss, []

    def loss(self, out, batch):
        calls.append(1)
        value = real(self, out, batch)
        return value * float("nan") if len(calls) >= first_bad else value

    monkeypatch.setattr(ClassificationTask, "loss", loss)


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path, monkeypatch):
    # 72 training shapes in batches of 16: 4 steps per epoch; call 6 is epoch 2, step 2.
    _nan_from_call(monkeypatch, 6)
    with pytest.raises(NonFiniteError) as info:
        train(config_from_dict({}, fast_overrides(tiny_data, epochs=3)), tmp_path, log=quiet)
    message = str(info.value)
    assert "\n" not in message
    assert "diverged in epoch 2, step 2/4: loss nan" in message and "optim.lr" in message
    assert "checkpoint_last.pt keeps epoch 1" in message
    last = load_checkpoint(tmp_path / "checkpoint_last.pt")
    assert last["epoch"] == 1 and not non_finite_tensors(last["model_state"])
    assert [json.loads(x)["epoch"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_best.pt", "checkpoint_last.pt", "config.yaml", "metrics.jsonl"]


def test_a_huge_learning_rate_is_one_line_and_exit_2_from_the_cli(tiny_data, tmp_path, capsys):
    from pointnet_kit.cli.main import main

    code = main(["train", "--out", str(tmp_path / "run"), *fast_overrides(tiny_data), "optim.lr=1e30"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "training diverged in epoch 1" in err[0] and "1e+30" in err[0]
    assert not list((tmp_path / "run").glob("checkpoint_*.pt"))  # no NaN weights on disk


def test_run_folders_are_never_shared_or_overwritten(tiny_data, tmp_path):
    config = config_from_dict({}, fast_overrides(tiny_data, epochs=1))
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "config.yaml").write_text("my own notes\n")
    with pytest.raises(PointNetKitError, match="not a pointnet-kit run and not empty"):
        train(config, mine, log=quiet)
    assert (mine / "config.yaml").read_text() == "my own notes\n" and len(list(mine.iterdir())) == 1
    with pytest.raises(PointNetKitError, match="nothing to resume"):
        train(config, mine, resume=mine, log=quiet)
    (tmp_path / "file").write_text("x")
    with pytest.raises(PointNetKitError, match="is a file"):
        train(config, tmp_path / "file", log=quiet)

    run = tmp_path / "run"
    train(config, run, log=quiet)
    with pytest.raises(PointNetKitError, match=f"already holds a run; continue it with --resume {run}"):
        train(config, run, log=quiet)
    assert is_run_dir(run)
    mode = (run / "checkpoint_last.pt").stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask  # readable by others as any file the user writes, not mkstemp's 0600
    assert all((run / n).stat().st_mode & 0o777 == mode for n in ("config.yaml", "metrics.jsonl", "summary.json"))


def test_default_run_folders_of_the_same_second_are_distinct(tiny_data, tmp_path, monkeypatch, capsys):
    from pointnet_kit.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("time.strftime", lambda *_a: "20250101-120000")
    args = ["train", *fast_overrides(tiny_data, epochs=1)]
    assert main(args) == 0 and main(args) == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["default-20250101-120000", "default-20250101-120000-2"]
    assert "run directory: runs/default-20250101-120000-2" in capsys.readouterr().out


def cli_failure(args: list[str], capsys) -> str:
    """The one error line of a failing CLI run (or the OSError itself while the CLI lets it through)."""
    from pointnet_kit.cli.main import main

    try:
        code = main(args)
    except OSError as exc:
        return str(exc)
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1, err
    return err[0]


def test_unwritable_out_is_one_line_naming_the_path(tiny_data, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"  # a parent that is a file: refused even for root
    assert str(out) in cli_failure(["train", "--out", str(out), *fast_overrides(tiny_data, epochs=1)], capsys)


def test_a_folder_without_write_permission_is_refused_before_loading_data(tiny_data, tmp_path, monkeypatch):
    # As root (CI containers) permissions do not bind, so the check itself is made to say no.
    monkeypatch.setattr("pointnet_kit.engine.trainer.os.access", lambda path, mode: False)
    with pytest.raises(PermissionError) as info:
        train(config_from_dict({}, fast_overrides(tmp_path / "no-data-needed")), tmp_path / "out", log=quiet)
    assert info.value.filename == str(tmp_path / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_is_one_line_naming_the_path(tiny_data, tmp_path, capsys):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        for target in (out, out / "run"):
            assert str(out) in cli_failure(["train", "--out", str(target), *fast_overrides(tiny_data, epochs=1)], capsys)
    finally:
        out.chmod(0o755)
