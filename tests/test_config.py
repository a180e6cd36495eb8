import pytest
import yaml

from mpi_es import config
from mpi_es.config import ConfigError
from mpi_es.envs import EnvError
from mpi_es.training.setup import prepare

BASE = {"env_id": "Ant-v5"}


def error_of(raw) -> str:
    with pytest.raises(ConfigError) as err:
        config.validate(raw)
    return str(err.value)


def test_defaults_are_the_notebooks():
    cfg = config.validate(BASE)
    assert (cfg.population_size, cfg.learning_rate, cfg.noise_stdev, cfg.l2coeff) == \
        (300, 0.001, 0.02, 0.005)
    assert (cfg.calc_obstat_prob, cfg.eval_prob, cfg.snapshot_freq) == (0.01, 0.003, 1)
    assert cfg.return_proc_mode == "centered_rank"
    assert cfg.model.hidden_dims == [256, 256] and cfg.model.nn_optimizer == "adam"
    assert cfg.model.nn_optimizer_args == {"stepsize": 0.01, "beta1": 0.9, "beta2": 0.999,
                                           "epsilon": 1e-8}
    assert all(getattr(cfg.optimizations, k) for k in ("mirrored_sampling", "fitness_shaping",
               "weight_decay", "neural_network_optimizer", "observation_normalization"))
    assert not cfg.optimizations.discretize_actions
    assert cfg.noise_table.size == 250_000_000 and cfg.out_dir == "runs/Ant-v5"
    assert cfg.train_slots == 150


def test_resolved_yaml_round_trips():
    cfg = config.validate({**BASE, "model": {"nn_optimizer": "sgd",
                                             "nn_optimizer_args": {"stepsize": 0.1}}})
    again = config.validate(yaml.safe_load(cfg.to_yaml()))
    assert again == cfg and again.model.nn_optimizer_args["momentum"] == 0.9


@pytest.mark.parametrize("raw, expected", [
    ({"populaton_size": 4}, "unknown key 'populaton_size' (did you mean 'population_size'?)"),
    ({"model": {"hiden_dims": [4]}}, "did you mean 'model.hidden_dims'"),
    ({"num_workers": 8}, "number of workers is the MPI world size"),
    ({"population_size": "many"}, "'population_size': Input should be a valid integer"),
    ({"noise_stdev": "big"}, "'noise_stdev': Input should be a valid number"),
    ({"optimizations": {"mirrored_sampling": "maybe"}}, "'optimizations.mirrored_sampling'"),
    ({"population_size": 0}, "'population_size': Input should be greater than 0"),
    ({"population_size": -4}, "'population_size': Input should be greater than 0"),
    ({"noise_stdev": 0}, "'noise_stdev': Input should be greater than 0"),
    ({"noise_stdev": -0.1}, "'noise_stdev': Input should be greater than 0"),
    ({"eval_prob": -0.1}, "'eval_prob': Input should be greater than or equal to 0"),
    ({"eval_prob": 1.5}, "'eval_prob': Input should be less than or equal to 1"),
    ({"calc_obstat_prob": 2}, "'calc_obstat_prob': Input should be less than or equal to 1"),
    ({"population_size": 301}, "'population_size' must be even with mirrored sampling"),
    ({"model": {"nonlin_type": "sigmoid"}}, "'model.nonlin_type': Input should be 'tanh', 'relu'"),
    ({"model": {"nn_optimizer": "rmsprop"}}, "'model.nn_optimizer': Input should be 'adam' or"),
    ({"return_proc_mode": "rank"}, "'return_proc_mode': Input should be 'centered_rank'"),
    ({"model": {"hidden_dims": [64, 0]}}, "'model.hidden_dims[1]': Input should be greater than 0"),
    ({"model": {"hidden_dims": [-3]}}, "'model.hidden_dims[0]'"),
    ({"model": {"ac_bins": 1}}, "'model.ac_bins': Input should be greater than or equal to 2"),
    ({"model": {"nn_optimizer_args": {"stepsize": 0}}}, "'model.nn_optimizer_args.stepsize' must"),
    ({"model": {"nn_optimizer_args": {"beta1": 0.9}}}, "'model.nn_optimizer_args.stepsize' is"),
    ({"model": {"nn_optimizer_args": {"stepsize": 0.1, "momentum": 0.5}}},
     "'model.nn_optimizer_args.momentum' is not an argument of adam"),
    ({"stop": {"generations": None}}, "set at least one of stop.generations"),
    ({"calc_obstat_prob": 0.0}, "'calc_obstat_prob' must be > 0 when"),
    ({"env_id": ""}, "'env_id'"),
])
def test_bad_values_name_the_key(raw, expected):
    assert expected in error_of({**BASE, **raw})


def test_missing_env_id():
    assert "'env_id' is required" in error_of({"population_size": 4})


def test_valid_edge_values():
    cfg = config.validate({**BASE, "population_size": 1, "eval_prob": 1.0,
                           "optimizations": {"mirrored_sampling": False}})
    assert cfg.train_slots == 1
    assert config.validate({**BASE, "noise_table": {"size": "2.5e7"}}).noise_table.size == 25_000_000


def test_load_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("env_id: Ant-v5\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"malformed YAML at line \d+"):
        config.load(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty"):
        config.load(empty)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping"):
        config.load(scalar)


def test_set_overrides_and_out_dir(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("env_id: Ant-v5\nmodel: {hidden_dims: [256, 256]}\n")
    cfg = config.load(path, ["model.hidden_dims=[64,64]", "stop.generations=7",
                             "optimizations.mirrored_sampling=false", "population_size=5"],
                      out_dir=str(tmp_path / "o"))
    assert cfg.model.hidden_dims == [64, 64] and cfg.stop.generations == 7
    assert cfg.population_size == 5 and cfg.out_dir == str(tmp_path / "o")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.load(path, ["stop.generations"])
    with pytest.raises(ConfigError, match="unknown key 'stop.generatons'"):
        config.load(path, ["stop.generatons=3"])
    with pytest.raises(ConfigError, match="not a section"):
        config.load(path, ["env_id.x=3"])


def test_env_checks_happen_before_training():
    with pytest.raises(EnvError, match="'env_id'.*did you mean"):
        prepare(config.validate({"env_id": "InvertedPendulum-v9"}))
    with pytest.raises(ConfigError, match="'noise_table.size'.*smaller than"):
        prepare(config.validate({"env_id": "InvertedPendulum-v5",
                                 "noise_table": {"size": 100}}))
    with pytest.raises(ConfigError, match="'timestep_limit'"):
        prepare(config.validate({"env_id": "toy_envs:ToyReachNoLimit-v0"}))
    setup = prepare(config.validate({"env_id": "toy_envs:ToyReachNoLimit-v0",
                                     "timestep_limit": 12}))
    assert setup.limit == 12
    assert prepare(config.validate({"env_id": "InvertedPendulum-v5",
                                    "timestep_limit": 5000})).limit == 1000


def test_population_too_small_for_the_ranks_is_warned_with_a_suggestion():
    cfg = config.validate({"env_id": "Ant-v5", "population_size": 300})
    warning = cfg.idle_ranks_warning(256)
    assert "150 noise vectors" in warning and "256 ranks" in warning
    assert "106 of the 256 ranks have no noise vector" in warning and "1024" in warning
    assert cfg.idle_ranks_warning(75) is None
    assert "wait on each other" in cfg.idle_ranks_warning(100)
    single = config.validate({"env_id": "Ant-v5", "population_size": 30,
                              "optimizations": {"mirrored_sampling": False}})
    assert "30 noise vectors" in single.idle_ranks_warning(64) and "128" in \
        single.idle_ranks_warning(64)


def test_reward_shift_needs_centered_rank_shaping():
    assert config.validate({"env_id": "Hopper-v5", "reward_shift": 1.0}).reward_shift == 1.0
    for bad in ({"return_proc_mode": "sign"}, {"optimizations": {"fitness_shaping": False}}):
        with pytest.raises(ConfigError, match="'reward_shift'.*centered_rank"):
            config.validate({"env_id": "Hopper-v5", "reward_shift": 1.0, **bad})


def test_eval_return_keys():
    assert "'stop.eval_every'" in error_of({**BASE, "stop": {"eval_every": 5}})
    assert "without stop.eval_return" in error_of({**BASE, "stop": {"eval_episodes": 3}})
    assert "'stop.eval_return'" in error_of({**BASE, "stop": {"eval_return": ".nan"}})
    assert "stop.eval_return may never be reached" in error_of(
        {**BASE, "stop": {"generations": None, "eval_return": 100}})
    cfg = config.validate({**BASE, "stop": {"eval_return": 3403.46, "eval_every": 5}})
    assert (cfg.stop.eval_return, cfg.stop.eval_episodes, cfg.stop.eval_every) == (3403.46, 10, 5)
    # a resolved config holds eval_every and eval_episodes at their defaults: it loads again
    plain = config.validate(BASE)
    assert config.validate(yaml.safe_load(plain.to_yaml())) == plain
