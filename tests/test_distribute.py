"""TF_CONFIG is checked before MultiWorkerMirroredStrategy reads it: one clear reason, no traceback."""

import json

import pytest

from tfsynth.distribute import StrategyError, check_tf_config

pytestmark = pytest.mark.unit

CLUSTER = {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}


def test_a_two_worker_tf_config_is_accepted():
    check_tf_config(json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 1}}))


@pytest.mark.parametrize("text, reason", [
    (None, "set TF_CONFIG"),
    ("{cluster: }", "not JSON"),
    (json.dumps([1, 2]), "'cluster'"),
    (json.dumps({"cluster": {"worker": "127.0.0.1:2222"}, "task": {"type": "worker", "index": 0}}), "'cluster'"),
    (json.dumps({"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}), "host:port"),
    (json.dumps({"cluster": CLUSTER}), "'task'"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "chief", "index": 0}}), "'task'"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": 2}}), "index 2"),
    (json.dumps({"cluster": CLUSTER, "task": {"type": "worker", "index": "0"}}), "index '0'"),
])
def test_a_tf_config_that_cannot_work_is_refused_saying_why(text, reason):
    with pytest.raises(StrategyError, match=reason):
        check_tf_config(text)
