import numpy as np

from mpi_es.core import noise


def test_any_partition_of_chunks_gives_the_serial_table(monkeypatch):
    monkeypatch.setattr(noise, "CHUNK_ENTRIES", 1000)
    size = 4_500                           # 5 chunks, the last one partial
    serial = noise.build_serial(size, 9)
    assert serial.dtype == np.float32
    for ranks in (2, 3):
        table = np.full(size, np.nan, np.float32)
        for rank in reversed(range(ranks)):          # order of filling does not matter
            noise.fill_chunks(table, 9, range(rank, noise.num_chunks(size), ranks))
        np.testing.assert_array_equal(table, serial)


def test_chunk_is_its_own_seeded_stream(monkeypatch):
    monkeypatch.setattr(noise, "CHUNK_ENTRIES", 1000)
    table = noise.build_serial(3000, 4)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(4, spawn_key=(2,))))
    np.testing.assert_array_equal(table[2000:3000], rng.standard_normal(1000, dtype=np.float32))
    assert not np.array_equal(noise.build_serial(3000, 5), table)


def test_table_is_standard_normal_and_indices_stay_in_range():
    t = noise.NoiseTable(noise.build_serial(200_000, 123))
    assert abs(t.noise.mean()) < 0.01 and abs(t.noise.std() - 1) < 0.01
    rng = np.random.default_rng(0)
    dim = 199_990
    idx = [t.sample_index(rng, dim) for _ in range(200)]
    assert min(idx) >= 0 and max(idx) + dim <= t.size
    assert t.get(idx[0], dim).shape == (dim,)
