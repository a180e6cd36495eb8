"""Run under mpiexec: build the noise table and report, per rank, what it holds and where."""
import hashlib
import json
import sys


from mpi_es.config import validate
from mpi_es.distributed.memory import mapping_of
from mpi_es.distributed.world import World
from mpi_es.training.setup import build_noise_table

size, seed = int(sys.argv[1]), int(sys.argv[2])
world = World()
cfg = validate({"env_id": "Pendulum-v1", "noise_table": {"size": size, "seed": seed}})
table = build_noise_table(world, cfg).noise
digest = hashlib.sha256(table.tobytes()).hexdigest()   # touches every page on every rank
world.barrier()
# A write by the last rank must be visible to rank 0: one memory, not copies.
if world.rank == world.size - 1:
    table[0] = 12345.0
world.barrier()
seen = float(table[0])
mapping = mapping_of(table)
report = world.gather({"rank": world.rank, "node_size": world.node_size, "digest": digest,
                       "seen": seen, "dtype": str(table.dtype), "address": mapping.start,
                       "shared": mapping.shared, "path": mapping.path,
                       "rss": mapping.rss_bytes, "pss": mapping.pss_bytes,
                       "mapping_bytes": mapping.end - mapping.start})
world.barrier()
if world.is_root:
    print(json.dumps(report))
world.free()
