"""The Snakemake workflow end to end on a tiny configuration, in a copy of the repository files."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def tiny_params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["seeds"] = [0, 1]
    params["methods"] = ["spar", "mae", "spar_untrained"]
    params["synth"]["m3nvc"].update(scenes=["h24", "s31"], train_run_s=8, test_run_s=6)
    params["pretrain"].update(epochs=2, batch_size=8, warmup_epochs=1, checkpoint_every=1)
    params["datasets"]["m3nvc"]["pretrain"] = {}
    params["datasets"]["coal_node"]["pretrain"].update(epochs=3, warmup_epochs=1, checkpoint_every=1)
    params["finetune"]["localization"].update(epochs=3, label_ratios=[1.0, 0.5])
    params["model"].update(dim=32, decoder_dim=16, modality_layers=1)
    params["synth"]["ridgecrest"].update(years=[2021, 2022], events_per_year=8)
    params["synth"]["realworld"].update(subjects=[1, 2, 11], seconds_per_activity=8)
    params["datasets"]["ridgecrest"]["pretrain"].update(epochs=2, batch_size=4)
    params["datasets"]["realworld"]["pretrain"].update(epochs=2)
    params["finetune"]["earthquake"].update(epochs=3)
    params["finetune"]["activity"].update(epochs=3)
    return params


def vehicle_params() -> dict:
    """The tiny configuration cut further for the vehicle experiments: one seed, two methods, two ablations."""
    params = tiny_params()
    params.update(seeds=[0], methods=["spar", "mae"])
    params["synth"]["m3nvc"]["scenes"].append("i22")  # two vehicles at once
    params["finetune"]["localization"]["label_ratios"] = [1.0]
    params["finetune"]["vehicle"].update(epochs=3)
    params["finetune"]["detection"].update(epochs=3)
    params["message_drop"]["probabilities"] = [0.2]
    params["placement"].update(exclude_scenes=["h24"])  # h24 is the unseen placement
    params["placement"]["fit"].update(epochs=1)
    params["ablations"] = {name: params["ablations"][name] for name in ("full", "no_structural_embedding")}
    return params


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=900,
    )


def copy_workflow(workdir: Path, params: dict) -> Path:
    shutil.copy(REPO / "Snakefile", workdir)
    shutil.copytree(REPO / "workflow", workdir / "workflow")
    (workdir / "params.yaml").write_text(yaml.safe_dump(params))
    return workdir


@pytest.fixture(scope="module")
def workflow_dir(tmp_path_factory) -> Path:
    return copy_workflow(tmp_path_factory.mktemp("workflow"), tiny_params())


@pytest.mark.slow
def test_demo_target_builds_table1(workflow_dir):
    result = run_snakemake(workflow_dir, "demo")
    assert result.returncode == 0, result.stderr[-3000:]

    table = pd.read_csv(workflow_dir / "results/table1.csv")
    assert table["method"].tolist() == ["spar", "mae", "spar_untrained"]
    assert (table["n_seeds@1.0"] == 2).all()
    assert (table["distance_m_mean@0.5"] > 0).all()
    assert (workflow_dir / "results/table1.md").read_text().startswith("# Table 1")
    assert (workflow_dir / "results/figures/fig3.png").stat().st_size > 10_000
    summary = json.loads((workflow_dir / "results/metrics/table1.json").read_text())
    assert set(summary) == {"spar", "mae", "spar_untrained"}

    # a second run finds nothing to do
    again = run_snakemake(workflow_dir, "-n", "demo")
    assert again.returncode == 0
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_changed_mask_ratio_reruns_pretraining(workflow_dir):
    plan = run_snakemake(workflow_dir, "-n", "--config", "mask_ratio=0.5", "--", "results/table1.csv")
    assert plan.returncode == 0, plan.stderr[-3000:]
    out = plan.stdout + plan.stderr
    assert "pretrain" in out and "Params have changed" in out


@pytest.mark.slow
def test_gpu_resources_plan(workflow_dir):
    plan = run_snakemake(workflow_dir, "-n", "--cores", "8", "--resources", "gpu=2", "--", "results/table1.csv")
    assert plan.returncode == 0, plan.stderr[-3000:]


@pytest.mark.slow
def test_coal_node_report_on_real_recordings(workflow_dir):
    result = run_snakemake(workflow_dir, "results/real/coal_node/report.json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((workflow_dir / "results/real/coal_node/report.json").read_text())
    assert len(report["ingested"]["events"]) == 5
    assert len(report["ingested"]["stations"]) == 12
    run = report["runs"][0]
    assert len(run["loss_curve"]) == 3
    assert run["embedding_shape"][0] == 5
    assert run["embedding_finite"]


@pytest.mark.slow
def test_table3_from_bundled_raw_files(workflow_dir):
    result = run_snakemake(workflow_dir, "results/table3.csv", "results/figures/fig6.png", "results/figures/fig7.png")
    assert result.returncode == 0, result.stderr[-3000:]

    table = pd.read_csv(workflow_dir / "results/table3.csv")
    assert table["method"].tolist() == ["spar", "mae", "spar_untrained"]
    assert (table["ridgecrest_distance_km_mean"] > 0).all()
    assert table["har_accuracy_mean"].between(0.0, 1.0).all()
    assert (table["har_n_seeds"] == 2).all()
    for figure in ("fig6.png", "fig7.png"):
        assert (workflow_dir / "results/figures" / figure).stat().st_size > 10_000


@pytest.mark.slow
def test_ridgecrest_model_on_coal_node_events(workflow_dir):
    result = run_snakemake(workflow_dir, "results/real/coal_node/localization.csv")
    assert result.returncode == 0, result.stderr[-3000:]

    table = pd.read_csv(workflow_dir / "results/real/coal_node/localization.csv")
    assert len(table) == 5
    assert (table["stations_present"] == 12).all()
    # the catalog hypocenters lie within 1 km of the coal network's centre
    assert (table[["catalog_east_km", "catalog_north_km", "catalog_up_km"]].abs() < 1.0).all().all()
    errors = ((table[["pred_east_km", "pred_north_km", "pred_up_km"]].to_numpy()
               - table[["catalog_east_km", "catalog_north_km", "catalog_up_km"]].to_numpy()) ** 2).sum(axis=1) ** 0.5
    assert abs(table["error_km"] - errors).max() < 0.01


@pytest.mark.slow
def test_vehicle_experiments_build(tmp_path):
    workdir = copy_workflow(tmp_path, vehicle_params())
    result = run_snakemake(workdir, "vehicle_experiments")
    assert result.returncode == 0, result.stderr[-3000:]
    results = workdir / "results"

    table2 = pd.read_csv(results / "table2.csv")
    assert table2["method"].tolist() == ["spar", "mae"]
    table5 = pd.read_csv(results / "table5.csv")
    assert table5["accuracy_mean"].between(0.0, 1.0).all()
    table6 = pd.read_csv(results / "table6.csv")
    assert (table6["n_seeds@0.2"] == 1).all()
    # mae has no structural positions, so it gets one row; spar gets random and fitted
    table7 = pd.read_csv(results / "table7.csv")
    assert table7["method"].tolist() == ["spar/random", "spar/fitted", "mae"]
    table8 = pd.read_csv(results / "table8.csv")
    assert table8["variant"].tolist() == ["full", "no_structural_embedding"]
    assert "| w/o structural embedding |" in (results / "table8.md").read_text()
    for figure in ("fig4.png", "fig5.png"):
        assert (results / "figures" / figure).stat().st_size > 10_000

    # the unchanged ablation row reuses the single-vehicle localization runs
    metrics = json.loads((results / "runs/table1/spar/ratio1.0/seed0/metrics.json").read_text())
    assert table8.loc[0, "mse_m2_mean"] == pytest.approx(metrics["mse_m2"])
