"""The benchmarks' own plumbing still fits the service (a figure from a broken harness is no figure)."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import http_load  # noqa: E402


def test_in_process_http_baseline_calls_the_real_handler():
    result = asyncio.run(http_load.in_process(2, 6, {"format": "gif", "scale": 2}))
    assert result["errors"] == 0 and result["statuses"] == {200: 6} and result["p50_ms"] > 0


def test_recipe_times_each_kind_of_stage_through_the_training_loop(tmp_path):
    import recipe

    out = tmp_path / "recipe.json"
    recipe.main(["--steps", "4", "--json", str(out)])
    result = json.loads(out.read_text())
    per_step, plan = result["ms_per_step"], recipe.recipes()
    assert set(plan) >= {"shipped", "before"} and not plan["before"][1]  # the one before: float32, as trained
    timed = {recipe.kind_name(k, bf16) for stages, bf16 in plan.values() for k, _ in stages}
    assert set(per_step) == timed and all(v > 0 for v in per_step.values())
    for name, (stages, bf16) in plan.items():
        minutes = sum(n * per_step[recipe.kind_name(kind, bf16)] for kind, n in stages) / 60_000
        assert result["recipes"][name]["minutes"] == pytest.approx(minutes)
    assert result["shipped_over_before"] == pytest.approx(
        result["recipes"]["shipped"]["minutes"] / result["recipes"]["before"]["minutes"]
    )
