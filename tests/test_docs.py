"""The config reference on the docs site is generated from the schema: every key of a resolved
config.yaml is in it, for every built-in algorithm and network."""
import pytest

from mpi_es import config
from mpi_es.config import reference


def flat_keys(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict) and key != "nn_optimizer_args":
            yield from flat_keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


@pytest.mark.parametrize("raw", [
    {"env_id": "Hopper-v5"},
    {"env_id": "Hopper-v5", "algorithm": "ars"},
    {"env_id": "PongNoFrameskip-v4", "model": {"network": "cnn"}},
], ids=["openai_es-mlp", "ars", "cnn"])
def test_every_resolved_key_is_in_the_generated_reference(raw):
    text = reference.markdown()
    resolved = config.validate(raw).model_dump(mode="json")
    missing = [key for key in flat_keys(resolved) if f"| `{key}` |" not in text]
    assert not missing
    undescribed = [line for line in text.splitlines()
                   if line.startswith("| `") and line.rstrip().endswith("|  |")]
    assert not undescribed


def test_the_resolved_config_holds_only_its_own_sections():
    mlp = config.validate({"env_id": "Hopper-v5"}).model_dump(mode="json")
    assert "ars" not in mlp and "vbn" not in mlp["model"] and "hidden_dims" in mlp["model"]
    cnn = config.validate({"env_id": "PongNoFrameskip-v4", "model": {"network": "cnn"}})
    assert "hidden_dims" not in cnn.model_dump()["model"] and cnn.model.vbn
    # a config resolved by an older version lists every section at its defaults: still valid
    old = {**mlp, "ars": {"version": "v2_t", "directions": 8, "top_directions": 4,
                          "step_size": 0.02, "delta_std": 0.03},
           "model": {**mlp["model"], "vbn": True, "vbn_batch": 128}}
    assert config.validate(old).model_dump(mode="json") == mlp
