"""tfsynth.profiling's arithmetic on hand-made traces and oneDNN logs."""

import pytest

from tfsynth import profiling

pytestmark = pytest.mark.unit


def test_union_length_counts_overlaps_once():
    assert profiling.union_length([(20, 30), (0, 10), (5, 15), (22, 25)]) == 25
    assert profiling.union_length([]) == 0


def test_a_damaged_trace_is_one_error_naming_the_file(tmp_path):
    damaged = tmp_path / "vm.xplane.pb"
    damaged.write_bytes(b"\xff\xff\xff not a trace")
    with pytest.raises(ValueError, match=f"--logdir: {damaged} is not a readable profiler trace"):
        profiling.read_trace(str(damaged))


def make_trace(start_ns: int, lines: dict[str, list[tuple[str, int, int]]]):
    """An XSpace with a host plane holding ``lines`` of (name, start µs, duration µs) events,
    a step number on every ``train`` event, and the profile's start time."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    host = space.planes.add(name="/host:CPU")
    host.stat_metadata[1].id, host.stat_metadata[1].name = 1, "step_num"
    ids = {}
    for line_name, events in lines.items():
        line = host.lines.add(name=line_name, timestamp_ns=0)
        for number, (name, start_us, duration_us) in enumerate(events, 7):
            key = ids.setdefault(name, len(ids) + 1)
            host.event_metadata[key].id, host.event_metadata[key].name = key, name
            event = line.events.add(metadata_id=key, offset_ps=start_us * 10**6, duration_ps=duration_us * 10**6)
            if name == profiling.STEP_EVENT:
                event.stats.add(metadata_id=1, int64_value=number)
    environment = space.planes.add(name="Task Environment")
    environment.stat_metadata[1].id, environment.stat_metadata[1].name = 1, "profile_start_time"
    environment.stats.add(metadata_id=1, int64_value=start_ns)
    return space


def test_step_times_split_each_step_into_computing_input_and_host():
    space = make_trace(5_000_000_000, {
        "train.py": [("train", 0, 100), ("train", 200, 50)],
        # Two executor threads: ops overlap (counted once), a wrapper event is no op.
        "tf_Compute/1": [("conv:Conv2D", 10, 30), ("ExecutorState::Process", 0, 100), ("add:AddV2", 210, 40)],
        "tf_Compute/2": [("mul:Mul", 30, 30), ("relu:Relu", 95, 20)],
        # The get-next overlapping an op counts as computing; alone, as waiting for input.
        "tf_data_iterator_get_next/3": [(profiling.INPUT_EVENT, 50, 30)],
        # An op on another thread than the executor's is not counted.
        "tf_data_private_threadpool/4": [("decode:DecodePng", 80, 10)],
    })
    first, second = profiling.step_times(space)
    assert (first.number, second.number) == (7, 8)
    assert first.start_ms == pytest.approx(5000.0) and second.start_ms == pytest.approx(5000.2)
    # computing: 10-60 and 95-100; input alone: 60-80; host: the rest of 100 µs
    assert (first.wall, first.computing, first.input_wait) == pytest.approx((100e-6, 55e-6, 20e-6))
    assert first.host == pytest.approx(25e-6)
    assert (second.wall, second.computing, second.input_wait, second.host) == pytest.approx((50e-6, 40e-6, 0, 10e-6))
    assert profiling.step_windows_ms([first, second]) == pytest.approx([(5000.0, 5000.1), (5000.2, 5000.25)])


def onednn_line(stamp_ms: float, kind: str, direction: str, ms: float) -> str:
    return (f"onednn_verbose,v1,{stamp_ms},primitive,exec,cpu,{kind},jit:avx512_core,{direction},"
            f"src:f32::blocked:acdb::f0 dst:f32::blocked:acdb::f0,,alg:convolution_direct,mb1_ic8oc8_ih4oh4kh3,{ms}\n")


def test_onednn_times_sum_the_primitives_run_in_the_steps(tmp_path):
    log = tmp_path / "run.out"
    log.write_text(
        "onednn_verbose,v1,info,oneDNN v3.7.3 (commit N/A)\n"
        "onednn_verbose,v1,primitive,info,template:timestamp,operation,engine,primitive,exec_time\n"
        "step 1/4  loss=0.5\n"
        + onednn_line(999.0, "convolution", "forward_training", 5.0)  # before the first step
        + onednn_line(1000.5, "convolution", "forward_training", 1.5)
        + onednn_line(1001.0, "convolution", "backward_data", 2.0)
        + onednn_line(1001.5, "convolution", "backward_weights", 3.0)
        + onednn_line(1002.0, "reorder", "undef", 0.25)
        + onednn_line(1005.0, "reorder", "undef", 9.0)  # between the steps
        + onednn_line(1010.0, "deconvolution", "forward_training", 0.75)
        + onednn_line(1010.5, "reorder", "undef", 0.25))
    times = profiling.onednn_times(str(log), [(1000.0, 1002.0), (1010.0, 1011.0)])
    assert times == pytest.approx({
        "oneDNN convolution, forward": 1.5, "oneDNN convolution, input gradient": 2.0,
        "oneDNN convolution, filter gradient": 3.0, "oneDNN deconvolution, forward": 0.75,
        "oneDNN reorder (a layout or type conversion)": 0.5})
    with pytest.raises(ValueError, match="no primitive of .* ran within the traced steps"):
        profiling.onednn_times(str(log), [(2000.0, 2001.0)])
    unstamped = tmp_path / "plain.out"
    unstamped.write_text("onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src dst,,,8x8,0.1\n")
    with pytest.raises(ValueError, match="has no timestamped primitive runs .*ONEDNN_VERBOSE_TIMESTAMP=1"):
        profiling.onednn_times(str(unstamped), [(0.0, 1e15)])
