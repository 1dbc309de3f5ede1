"""The interleaved timer and the machine information a timing depends on."""
import pytest

from rexnet_mmdet.utils.timing import format_machine, machine_info, medians, time_interleaved


def test_interleaved_rounds_rotate_and_count():
    calls = []
    cases = {name: (lambda n=name: calls.append(n)) for name in 'abc'}
    times = time_interleaved(cases, repeats=4, warmup=2)
    assert {k: len(v) for k, v in times.items()} == {'a': 4, 'b': 4, 'c': 4}
    assert all(t >= 0 for v in times.values() for t in v)
    # Two warm-up rounds in order, then round r starts with case r mod 3.
    assert calls == list('abc' * 2) + list('abc') + list('bca') + list('cab') + list('abc')
    with pytest.raises(ValueError, match='repeats'):
        time_interleaved(cases, repeats=0)
    # Blocks: each turn calls one case twice in a row; the last turn stops at `repeats`.
    calls.clear()
    times = time_interleaved({'a': cases['a'], 'b': cases['b']}, repeats=3, warmup=0, block=2)
    assert calls == list('aabb') + list('ba') and [len(t) for t in times.values()] == [3, 3]


def test_phases_split_warm_up_from_timed_calls():
    """The warm-up round (one call of 20 ms) and the timed ones (four of 20 ms) are reported apart."""
    import time
    cases = {'slow': lambda: time.sleep(0.02)}
    phases = {'prepare_s': 1.5}
    times = time_interleaved(cases, repeats=4, warmup=1, phases=phases)
    assert set(phases) == {'prepare_s', 'warmup_s', 'timed_s'} and phases['prepare_s'] == 1.5
    assert 0.02 <= phases['warmup_s'] < phases['timed_s'] and sum(times['slow']) <= phases['timed_s']


def test_medians_and_machine_info():
    assert medians({'a': [3.0, 1.0, 2.0]}) == {'a': 2.0}
    info = machine_info()
    assert info['cores'] >= 1 and info['device'] == 'cpu'
    assert format_machine(info).startswith('CPU: ')
