"""``on_main`` in one process is the call itself; what it sends between ranks survives pickling."""

import pytest

from tailteacher.engine.main_rank import MainRankError, _sendable, main_only_action, on_main
from tailteacher.errors import InputError


def test_in_one_process_on_main_is_the_call():
    assert on_main(lambda: {"a": 1}) == {"a": 1}
    assert main_only_action(lambda x, y=0: x + y)(2, y=3) == 5
    with pytest.raises(InputError, match="bad"):
        on_main(lambda: (_ for _ in ()).throw(InputError("bad")))


def test_an_input_error_is_sent_as_itself_and_an_unpicklable_error_by_name():
    err = InputError("data.train_json: no such file")
    assert _sendable(err) is err

    class Local(Exception):  # a local class cannot be pickled
        pass

    sent = _sendable(Local("boom"))
    assert isinstance(sent, MainRankError) and "Local: boom" in str(sent)
