"""Several nodes, simulated on this host by MPICH (MPIR_CVAR_NUM_CLIQUES): one noise table per
node, the slot counter and the allgathers across nodes, results identical to one rank."""
import hashlib
import json

import pytest

from conftest import run_mpi
from mpi_es.core import noise
from test_reference import DIGESTS, REFERENCE, digests

pytestmark = pytest.mark.mpi


@pytest.mark.parametrize("ranks, nodes", [(4, 2), (3, 3)])
def test_one_noise_table_per_node(ranks, nodes):
    size, seed = 2_000_000, 7
    expected = hashlib.sha256(noise.build_serial(size, seed).tobytes()).hexdigest()
    proc = run_mpi(ranks, "tests/mpi_scripts/noise_probe.py", str(size), str(seed),
                   module=False, nodes=nodes)
    assert proc.returncode == 0, proc.stderr
    reports = json.loads(proc.stdout)
    assert [r["digest"] for r in reports] == [expected] * ranks
    # ranks are dealt round-robin: rank r is on node r % nodes
    per_node = {}
    for r in reports:
        per_node.setdefault(r["rank"] % nodes, []).append(r)
    assert len(per_node) == nodes
    table_bytes = size * 4
    for members in per_node.values():
        assert all(m["node_size"] == len(members) for m in members)
        if len(members) > 1:
            assert len({m["path"] for m in members}) == 1 and all(m["shared"] for m in members)
    # each node holds its table once: summed PSS is nodes x the table
    total_pss = sum(r["pss"] for r in reports)
    assert 0.95 * nodes * table_bytes <= total_pss <= 1.1 * nodes * table_bytes
    paths = {r["path"] for r in reports if r["shared"]}
    assert len(paths) == sum(1 for m in per_node.values() if len(m) > 1)


@pytest.mark.parametrize("ranks, nodes", [(4, 2), (3, 3)])
def test_training_across_simulated_nodes_is_bit_identical(tmp_path, ranks, nodes):
    for variant in sorted(DIGESTS):
        out = tmp_path / variant
        proc = run_mpi(ranks, str(REFERENCE / f"{variant}.yaml"), "--out-dir", str(out),
                       nodes=nodes)
        assert proc.returncode == 0, proc.stderr
        assert digests(out / "checkpoint.h5") == DIGESTS[variant]
        # slots were claimed from the one counter by ranks on every node
        import csv
        with open(out / "log.csv") as f:
            workers = [int(row["UniqueWorkers"]) for row in csv.DictReader(f)]
        assert max(workers) >= 2


def test_ranks_alone_on_a_shared_host_are_grouped_by_host(monkeypatch):
    """Only when the MPI put every rank alone although ranks share a host (Open MPI under
    srun --mpi=pmix without locality); MPICH's simulated nodes are taken at their word."""
    from mpi_es.distributed.world import no_locality
    for name in ("MPIR_CVAR_NUM_CLIQUES", "MPIR_CVAR_ODD_EVEN_CLIQUES"):
        monkeypatch.delenv(name, raising=False)
    assert no_locality([("a", 1), ("a", 1), ("b", 1), ("b", 1)])
    assert not no_locality([("a", 2), ("a", 2), ("b", 1)])        # the MPI knows locality
    assert not no_locality([("a", 1), ("b", 1)])                  # one rank per host
    monkeypatch.setenv("MPIR_CVAR_NUM_CLIQUES", "2")
    assert not no_locality([("a", 1), ("a", 1)])
